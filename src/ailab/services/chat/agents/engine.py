"""The graph runner: one turn through a pipeline of agents, streamed as events, stored step by step.

States of a run (``AgentPipeline.run``)::

    start ──> step(entry) ──> step(next) ──> ... ──> final
                  │
                  ├─ router: decide (a structured call, ``decisions.py``) among the targets worth
                  │  offering (a reviewer only when there is new work) ─> the choice, bounded:
                  │     ├─ max steps reached / time budget spent -> end ("wanted X; stopped: ...")
                  │     └─ an unreadable decision's default that already ran -> end
                  │  then write: END and no answer yet -> answer the request itself
                  │              END and an answer exists -> nothing
                  │              an agent -> a short brief for it (ANALYZE / PLAN)
                  ├─ fixed route: write (the agent's work), then its one target
                  ├─ time budget spent mid-step  -> step stored as "timeout", then end
                  ├─ output repeating itself     -> generation cut, the step goes on as "done"
                  ├─ consumer closed the stream  -> provider stream closed, step stored as "cut_off", stop
                  └─ provider error              -> step stored as "error", the error propagates

A **step** is one agent acting once: ``AgentStart``, its tokens as ``Delta(text, agent)``, then (once the
step is stored, in its own write transaction) ``Decision(agent, next)`` and ``AgentEnd``. The run ends
with exactly one ``Final``. Its ``thought_process`` is the trace (each step's protocol lines, where it
went, how that was decided and why), its ``response`` the **final answer**: the answer text
(``routing.answer_text``) of the last step that has one, where a step of an agent with ``answers: false``
(the CEO, QA: they comment on others' work) only counts when it answered the request itself, when it
writes an ``ANSWER:`` section, or when no step before it produced an answer. When no step has answer
text, the last non-empty output is used.

Each step's model is the agent's ``model``, else the turn's, else the server default; ``max_tokens`` is
the smaller of the agent's and the turn's (a brief takes at most ``BRIEF_TOKENS``); ``temperature`` the
agent's, else the turn's. The bounds are the pipeline's, capped by ``AILAB_AGENT_MAX_STEPS`` and
``AILAB_AGENT_TIME_BUDGET_SECONDS``; the time budget also scales with what the models have shown they
can do (:meth:`AgentPipeline.time_budget`), so a run on a fast small model is bounded in seconds, not
minutes. Nothing here blocks the event loop: providers stream asynchronously and every database write
is awaited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from ailab.errors import AILabError, ModelNotFound, ProviderAuthError, ProviderError
from ailab.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    Provider,
    ResponseSchema,
    Usage,
    close_stream,
)
from ailab.providers.registry import ProviderRegistry
from ailab.providers.repetition import RepetitionGuard
from ailab.providers.timing import GenerationTimer
from ailab.services.chat.agents.decisions import (
    AGENT,
    DECISION_MAX_TOKENS,
    DEFAULT,
    FIXED,
    Choice,
    decision_prompt,
    decision_schema,
    label,
    read_decision,
)
from ailab.services.chat.agents.definitions import END, AgentSpec, PipelineSpec, Route
from ailab.services.chat.agents.routing import answer_text, has_answer_marker, protocol_lines
from ailab.services.chat.direct import model_id_of
from ailab.services.chat.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent, Turn

DONE, CUT_OFF, TIMEOUT, ERROR = "done", "cut_off", "timeout", "error"
WORK, ANSWER, BRIEF = "work", "answer", "brief"  # what a step writes
CONTEXT_STEPS = 4  # earlier steps shown to the next agent
CONTEXT_CHARS = 1200  # of each of them
# The chat service fits the history to the window of a one-model answer; agents also carry a system
# prompt and the work so far, so they keep only the newest part of it (~1000 tokens at 4 chars a token).
HISTORY_CHARS = 4000
SUMMARY_CHARS = 300
BRIEF_TOKENS = 128
# The time budget from the models' speed: every step at its token limit, with this much slack ...
BUDGET_SLACK = 1.5
MIN_BUDGET_S = 30.0  # ... and never less than this (a model's first load, a slow first token)
ANSWER_INSTRUCTION = "Answer the user's request yourself now, directly and briefly, for the user."
BRIEF_INSTRUCTION = (
    "You hand the work on to {target}. In two or three short lines write ANALYZE: what the user "
    "needs, and PLAN: what {target} should do. Do not do the work yourself."
)
log = logging.getLogger("ailab.agents")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One finished (or cut) step, as it is stored in ``agent_states``."""

    session_id: str | None
    request_id: str
    step: int
    agent: str
    input_summary: str
    output: str
    thought_process: str
    decision: str | None
    routed_by: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None
    duration_ms: float
    status: str
    run_id: str | None = None


class StepStore(Protocol):
    """Where finished steps go; each ``save`` is its own transaction."""

    async def save(self, record: StepRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class Bounds:
    """The hard limits of one run."""

    max_steps: int
    time_budget_seconds: float


@dataclass
class _Step:
    number: int
    agent: AgentSpec
    route: Route
    input_summary: str = ""
    model: str | None = None
    choice: Choice | None = None
    mode: str | None = None  # WORK, ANSWER, BRIEF; None: nothing to write
    parts: list[str] = field(default_factory=list)
    decision_usage: Usage | None = None
    timer: GenerationTimer | None = None  # the step's own generation, once it starts
    started: float = 0.0
    ended: float = 0.0
    status: str = DONE
    repeated: bool = False  # the output was cut because it repeated itself

    @property
    def output(self) -> str:
        return "".join(self.parts)

    @property
    def usage(self) -> Usage | None:
        """What the step's generation reported, if it reported anything."""
        return self.timer.usage if self.timer is not None else None

    @property
    def chunks(self) -> int:
        return self.timer.chunks if self.timer is not None else 0

    @property
    def first_token(self) -> float | None:
        return self.timer.first_at if self.timer is not None else None

    @property
    def is_router(self) -> bool:
        return not self.route.is_fixed

    @property
    def target(self) -> str:
        return self.choice.target if self.choice is not None else END

    @property
    def answer(self) -> str:
        """The part of the output meant for the user."""
        return answer_text(self.output)

    @property
    def counts_as_answer(self) -> bool:
        """Whether its answer text is an answer by itself (not a comment on others' work)."""
        return self.mode == ANSWER or self.agent.answers or has_answer_marker(self.output)


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _one_line(text: str, limit: int = 160) -> str:
    return _clip(" ".join(text.split()), limit)


def _recent(history: list[ChatMessage], budget: int = HISTORY_CHARS) -> list[ChatMessage]:
    """The newest messages of ``history`` whose text fits ``budget`` characters."""
    kept: list[ChatMessage] = []
    for message in reversed(history):
        budget -= len(message.content)
        if budget < 0:
            break
        kept.append(message)
    return kept[::-1]


def _add(first: Usage | None, second: Usage | None) -> Usage | None:
    if first is None or second is None:
        return first or second
    return Usage(
        first.prompt_tokens + second.prompt_tokens, first.completion_tokens + second.completion_tokens
    )


class AgentPipeline:
    """A :class:`~ailab.services.chat.turns.ChatPipeline` running a graph of agents (see the module)."""

    def __init__(
        self,
        spec: PipelineSpec,
        agents: Mapping[str, AgentSpec],
        providers: ProviderRegistry,
        store: StepStore,
        bounds: Bounds,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.agents = dict(agents)
        self.providers = providers
        self.store = store
        self.bounds = bounds
        self._clock = clock
        self._cleanups: set[asyncio.Task[Any]] = set()

    def time_budget(self, turn: Turn) -> float:
        """The run's time budget: the bound, or less when the models are known to be faster.

        Every step of the run at the token limit of the slowest of the pipeline's agents, at the speed
        its model has shown (``ProviderRegistry.speeds``), with ``BUDGET_SLACK``; at least
        ``MIN_BUDGET_S``. A model not seen yet gets the whole bound.
        """
        slowest = 0.0
        for name in self.spec.agent_names:
            agent = self.agents[name]
            try:
                provider, model = self.providers.resolve(agent.model or turn.model)
            except AILabError:
                return self.bounds.time_budget_seconds
            speed = self.providers.speeds.get(f"{provider.name}/{model}")
            limits = [n for n in (agent.max_tokens, turn.max_tokens) if n is not None]
            if speed is None or not limits:
                return self.bounds.time_budget_seconds
            slowest = max(slowest, speed.seconds_for(min(limits)) + speed.seconds_for(DECISION_MAX_TOKENS))
        scaled = max(MIN_BUDGET_S, slowest * self.bounds.max_steps * BUDGET_SLACK)
        return min(self.bounds.time_budget_seconds, scaled)

    async def run(self, turn: Turn) -> AsyncIterator[PipelineEvent]:
        """Run ``turn`` through the pipeline; see the module docstring for the states."""
        started = self._clock()
        budget = self.time_budget(turn)
        deadline = started + budget
        steps: list[_Step] = []
        trace: list[str] = []
        stopped = ""
        current = self.spec.entry
        while True:
            step = _Step(number=len(steps) + 1, agent=self.agents[current], route=self.spec.routes[current])
            steps.append(step)
            yield AgentStart(current)
            # aclosing: when our consumer closes us, the step's own clean-up (cut_off) runs at once.
            async with aclosing(self._run_step(turn, step, steps[:-1], deadline, budget)) as events:
                async for event in events:
                    yield event
            choice = step.choice or Choice(END, FIXED)
            if "stopped: " in choice.note:
                stopped = choice.note[choice.note.index("stopped: ") :]
            await self._save(self._record(turn, step, choice))
            trace.append(f"[{step.number}] {current}: {self._summary(step)}")
            how = (
                ""
                if choice.routed_by == FIXED
                else f"decided by {'the agent' if choice.routed_by == AGENT else 'default'}"
            )
            why = "; ".join(part for part in (how, choice.note) if part)
            trace.append(f"[{step.number}] {current} -> {choice.target}" + (f" ({why})" if why else ""))
            yield Decision(current, choice.target)
            yield AgentEnd(current)
            if choice.target == END:
                break
            current = choice.target
        trace.append(stopped or f"completed in {len(steps)} step{'s' if len(steps) > 1 else ''}")
        yield self._final(steps, trace, started)

    async def _run_step(
        self, turn: Turn, step: _Step, earlier: list[_Step], deadline: float, budget: float
    ) -> AsyncGenerator[PipelineEvent, None]:
        """Decide (routers) and write into ``step``; stores it itself only when it is cut or fails."""
        step.started = self._clock()
        stream: AsyncIterator[ChatChunk] | None = None
        try:
            provider, model_name = self.providers.resolve(step.agent.model or turn.model)
            step.model = await model_id_of(provider, model_name)
            route = self._offered(step, earlier) if step.is_router else step.route
            if route.is_fixed:
                choice = Choice(route.next[0], FIXED, "" if route is step.route else "the only choice left")
            else:
                choice = await self._decide(
                    turn, step, earlier, route, provider=provider, model_name=model_name, deadline=deadline
                )
            step.choice = self._bounded(choice, step, earlier, deadline, budget)
            step.mode = self._mode(step, earlier)
            if step.mode is not None:
                step.timer = GenerationTimer(
                    self.providers, provider.name, model_name, stream=True, clock=self._clock
                )
                stream = provider.stream(self._request(turn, step, earlier, model_name))
                guard = RepetitionGuard()
                # asyncio.timeout, not wait_for: no task per token, and (Python 3.11) wait_for loses a
                # cancellation (a client hanging up) that comes as the awaited chunk arrives.
                async with asyncio.timeout(self._remaining(deadline)):
                    async for chunk in stream:
                        if step.timer.take(chunk):
                            step.parts.append(chunk.delta)
                            yield Delta(chunk.delta, step.agent.name)
                            if guard.add(hash(chunk.delta)) is not None:
                                step.repeated = True  # a remote model's loop (the embedded one cuts its own)
                                break
        except TimeoutError:
            step.status = TIMEOUT
            step.choice = Choice(
                END, step.choice.routed_by if step.choice else FIXED, self._out_of_time(budget)
            )
        except (GeneratorExit, asyncio.CancelledError) as exc:
            step.status = CUT_OFF
            failed = self._save_failed(turn, step, "cut off by the client", exc)
            await self._finish(close_stream(stream), failed)
            raise
        except Exception as exc:
            step.status = ERROR
            reason = exc.message if isinstance(exc, AILabError) else type(exc).__name__
            await self._finish(close_stream(stream), self._save_failed(turn, step, f"error: {reason}", exc))
            raise
        finally:
            step.ended = self._clock()
        await close_stream(stream)
        if step.timer is not None:  # a step cut by the turn's time budget still produced its text
            step.timer.finish()

    def _remaining(self, deadline: float) -> float:
        """Seconds left before ``deadline``; TimeoutError when none are."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    @staticmethod
    def _out_of_time(budget: float) -> str:
        return f"stopped: time budget ({round(budget, 1):g}s)"

    def _offered(self, step: _Step, earlier: list[_Step]) -> Route:
        """The router's targets worth offering now: a reviewer (an agent with ``answers: false``) only
        when another agent (not the router) produced work it has not seen: before there is any work,
        or for the same work twice, a review adds nothing, and a small model choosing at random would
        loop on it. Answering agents are always offered (the router's brief may carry new feedback)."""
        targets = [t for t in step.route.next if self._worth_asking(t, step, earlier)]
        if targets == step.route.next:
            return step.route
        default = step.route.default if step.route.default in targets else targets[0]
        return Route(next=targets, default=default)

    def _worth_asking(self, target: str, step: _Step, earlier: list[_Step]) -> bool:
        agent = self.agents.get(target)
        if target == END or agent is None:
            return True
        if agent.answers:
            return True
        spoke = [i for i, s in enumerate(earlier) if s.agent.name == target]
        since = earlier[spoke[-1] + 1 :] if spoke else earlier
        return any(s.agent.name not in (target, step.agent.name) and s.output.strip() for s in since)

    async def _decide(
        self,
        turn: Turn,
        step: _Step,
        earlier: list[_Step],
        route: Route,
        *,
        provider: Provider,
        model_name: str,
        deadline: float,
    ) -> Choice:
        """The router's choice, asked as structured output; the lenient text reading as the last resort."""
        answered = any(s.answer and s.counts_as_answer for s in earlier)
        content = self._content(turn, step, earlier)
        messages = [*_recent(turn.history), ChatMessage("user", content)]
        prompt = decision_prompt(route, self.agents, answered=answered)
        request = ChatRequest(
            model=model_name,
            messages=[ChatMessage("system", f"{step.agent.system_prompt}\n\n{prompt}"), *messages],
            max_tokens=DECISION_MAX_TOKENS,
            temperature=0.0,
            response_schema=ResponseSchema("route", decision_schema(route.next), "who acts next"),
            requester=turn.owner_id,
        )

        def in_plain_text() -> ChatRequest:
            as_text = decision_prompt(route, self.agents, answered=answered, as_text=True)
            system = ChatMessage("system", f"{step.agent.system_prompt}\n\n{as_text}")
            return replace(request, messages=[system, *messages], response_schema=None)

        capabilities = self.providers.capabilities(provider.name)
        if capabilities is not None and not capabilities.json_schema:
            # Its plugin says its models cannot hold to a schema: plain text at once, not after a refusal.
            text = await self._decision_call(provider, in_plain_text(), deadline, step)
            return read_decision(text, route, list(self.agents))
        try:
            text = await self._decision_call(provider, request, deadline, step)
        except (ProviderAuthError, ModelNotFound):
            raise  # the step itself would fail the same way
        except ProviderError as exc:  # e.g. a server that does not take the schema: ask in plain text
            log.info("%s refused a structured decision (%s); asking in plain text", step.model, exc.message)
            text = await self._decision_call(provider, in_plain_text(), deadline, step)
        return read_decision(text, route, list(self.agents))

    async def _decision_call(
        self, provider: Provider, request: ChatRequest, deadline: float, step: _Step
    ) -> str:
        timer = GenerationTimer(self.providers, provider.name, request.model, stream=False, clock=self._clock)
        try:
            async with asyncio.timeout(self._remaining(deadline)):
                result = await provider.chat(request)
        except BaseException as exc:
            timer.finish(exc)
            raise
        usage = timer.usage = result.usage
        timer.finish()
        step.decision_usage = _add(step.decision_usage, usage)
        return result.content

    def _bounded(
        self, choice: Choice, step: _Step, earlier: list[_Step], deadline: float, budget: float
    ) -> Choice:
        """``choice`` within the run's rules and bounds (see the states in the module docstring)."""
        if choice.target == END:
            return choice
        if choice.routed_by == DEFAULT and choice.target in {s.agent.name for s in [*earlier, step]}:
            return replace(choice, target=END, note=f"{choice.note}; {choice.target} already ran, so end")
        wanted = f"{choice.note}; wanted {choice.target}" if choice.note else f"wanted {choice.target}"
        if step.number >= self.bounds.max_steps:
            return replace(choice, target=END, note=f"{wanted}; stopped: max steps ({self.bounds.max_steps})")
        if self._clock() >= deadline:
            return replace(choice, target=END, note=f"{wanted}; {self._out_of_time(budget)}")
        return choice

    @staticmethod
    def _mode(step: _Step, earlier: list[_Step]) -> str | None:
        """What the step writes (see the states in the module docstring)."""
        if not step.is_router:
            return WORK
        if step.target != END:
            return BRIEF
        if any(s.answer and s.counts_as_answer for s in earlier):
            return None
        return ANSWER

    def _content(self, turn: Turn, step: _Step, earlier: list[_Step]) -> str:
        """The user message of a step: the request, and the work so far."""
        if not earlier:
            step.input_summary = _clip(turn.message, SUMMARY_CHARS)
            return turn.message
        shown = [s for s in earlier if s.output.strip()][-CONTEXT_STEPS:]
        if not shown:
            step.input_summary = _clip(turn.message, SUMMARY_CHARS)
            return turn.message
        work = "\n\n".join(f"[{s.agent.name}] {_clip(s.output, CONTEXT_CHARS)}" for s in shown)
        names = ", ".join(f"{s.agent.name} (step {s.number})" for s in shown)
        step.input_summary = _clip(f"request + output of {names}: {turn.message}", SUMMARY_CHARS)
        # No closing instruction after the work: small models echo such lines into their answer.
        return f"{turn.message}\n\nWork so far:\n{work}"

    def _request(self, turn: Turn, step: _Step, earlier: list[_Step], model_name: str) -> ChatRequest:
        agent = step.agent
        system = agent.system_prompt
        if step.mode == ANSWER:
            system += f"\n\n{ANSWER_INSTRUCTION}"
        elif step.mode == BRIEF:
            system += "\n\n" + BRIEF_INSTRUCTION.format(target=label(step.target))
        limits = [n for n in (agent.max_tokens, turn.max_tokens) if n is not None]
        if step.mode == BRIEF:
            limits.append(BRIEF_TOKENS)
        content = self._content(turn, step, earlier)
        return ChatRequest(
            model=model_name,
            messages=[ChatMessage("system", system), *_recent(turn.history), turn.user_message(content)],
            max_tokens=min(limits) if limits else None,
            temperature=agent.temperature if agent.temperature is not None else turn.temperature,
            requester=turn.owner_id,
        )

    def _summary(self, step: _Step) -> str:
        if step.mode == BRIEF:
            lines = protocol_lines(step.output)
            if lines:
                return " | ".join(_one_line(line, 120) for line in lines)
        if step.mode is None:
            return "(nothing to add)"
        return _one_line(step.output) or "(no output)"

    def _record(
        self, turn: Turn, step: _Step, choice: Choice | None, failure: str | None = None
    ) -> StepRecord:
        lines = protocol_lines(step.output) if step.mode == BRIEF else []
        if step.repeated:
            lines.append("cut: the output repeated itself")
        if choice is not None:
            how = f"routed by {choice.routed_by}"
            lines.append(f"-> {choice.target} ({how}" + (f"; {choice.note})" if choice.note else ")"))
        else:
            lines.append(f"status: {failure}")
        usage = _add(step.usage, step.decision_usage)
        return StepRecord(
            session_id=turn.session_id,
            request_id=turn.request_id,
            run_id=turn.run_id,
            step=step.number,
            agent=step.agent.name,
            input_summary=step.input_summary,
            output=step.output,
            thought_process="\n".join(lines),
            decision=choice.target if choice is not None else None,
            routed_by=choice.routed_by if choice is not None else None,
            model=step.model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else step.chunks,
            ttft_ms=(step.first_token - step.started) * 1000 if step.first_token is not None else None,
            duration_ms=max(0.0, (step.ended or self._clock()) - step.started) * 1000,
            status=step.status,
        )

    async def _save_failed(self, turn: Turn, step: _Step, note: str, error: BaseException) -> None:
        step.ended = self._clock()
        if step.timer is not None:
            step.timer.finish(error)
        await self._save(self._record(turn, step, None, note))

    async def _save(self, record: StepRecord) -> None:
        if record.session_id is not None:  # a stateless turn (the OpenAI-compatible API) keeps none
            await self.store.save(record)

    async def _finish(self, *cleanups: Awaitable[None]) -> None:
        """Run the cleanups in order to the end, even while this task is being cancelled."""

        async def in_order() -> None:
            for cleanup in cleanups:
                try:
                    await cleanup
                except Exception:
                    log.exception("clean-up of an agent step failed")

        task = asyncio.ensure_future(in_order())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        await asyncio.shield(task)

    def _final(self, steps: list[_Step], trace: list[str], started: float) -> Final:
        answer, source = "", None
        seen_answer = False
        for step in steps:
            text = step.answer
            if text and (step.counts_as_answer or not seen_answer):
                answer, source = text, step
                seen_answer = True
        if not answer:
            for step in reversed(steps):
                if step.output.strip():
                    answer, source = step.output.strip(), step
                    break
        usages = [_add(s.usage, s.decision_usage) for s in steps]
        prompt = sum(u.prompt_tokens if u else 0 for u in usages)
        completion = sum(u.completion_tokens if u else s.chunks for u, s in zip(usages, steps, strict=True))
        first = next((s.first_token for s in steps if s.first_token is not None), None)
        generating = sum(max(0.0, s.ended - s.first_token) for s in steps if s.first_token is not None)
        text_tokens = sum(s.usage.completion_tokens if s.usage else s.chunks for s in steps)
        return Final(
            response=answer,
            model=(source or steps[-1]).model,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
            thought_process="\n".join(trace),
            ttft_ms=(first - started) * 1000 if first is not None else None,
            tokens_per_second=text_tokens / generating if generating > 0 else None,
        )
