"""The graph runner: one turn through a pipeline of agents, streamed as events, stored step by step.

States of a run (``AgentPipeline.run``)::

    start ──> step(entry) ──> route ──> step(next) ──> route ──> ... ──> final
                  │             │
                  │             ├─ decision read        -> that agent, or end
                  │             ├─ unreadable/not allowed -> the route's default (end if it already ran)
                  │             ├─ max steps reached     -> end, "stopped: max steps (N)"
                  │             └─ time budget spent     -> end, "stopped: time budget (Ns)"
                  ├─ time budget spent mid-step  -> step stored as "timeout", then end
                  ├─ consumer closed the stream  -> provider stream closed, step stored as "cut_off", stop
                  └─ provider error              -> step stored as "error", the error propagates

A **step** is one agent answering once: ``AgentStart``, its tokens as ``Delta(text, agent)``, then (once
the step is stored, in its own write transaction) ``Decision(agent, next)`` and ``AgentEnd``. The run ends
with exactly one ``Final``. Its ``thought_process`` is the trace (each step's protocol lines and where it
went, and why), its ``response`` the **final answer**: the answer text (``routing.answer_text``) of the
last step that has one, where the text of an agent with ``answers: false`` (the CEO, QA: they comment
on others' work) only counts when it writes an ``ANSWER:`` section or when no step before it produced an
answer. When no step has answer text, the last non-empty output is used.

Each step's model is the agent's ``model``, else the turn's, else the server default; ``max_tokens`` is
the smaller of the agent's and the turn's; ``temperature`` the agent's, else the turn's. The bounds are
the pipeline's, capped by ``AILAB_AGENT_MAX_STEPS`` / ``AILAB_AGENT_TIME_BUDGET_SECONDS``. Nothing here
blocks the event loop: providers stream asynchronously and every database write is awaited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from ailab.errors import AILabError
from ailab.providers.base import ChatChunk, ChatMessage, ChatRequest, Usage
from ailab.providers.registry import GenerationRecord, ProviderRegistry
from ailab.services.agents.definitions import END, AgentSpec, PipelineSpec, Route
from ailab.services.agents.routing import answer_text, has_answer_marker, parse_decision, protocol_lines
from ailab.services.direct import model_id_of
from ailab.services.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent, Turn

DONE, CUT_OFF, TIMEOUT, ERROR = "done", "cut_off", "timeout", "error"
CONTEXT_STEPS = 4  # earlier steps shown to the next agent
CONTEXT_CHARS = 1200  # of each of them
# The chat service fits the history to the window of a one-model answer; agents also carry a system
# prompt and the work so far, so they keep only the newest part of it (~1000 tokens at 4 chars a token).
HISTORY_CHARS = 4000
SUMMARY_CHARS = 300
log = logging.getLogger("ailab.agents")


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One finished (or cut) step, as it is stored in ``agent_states``."""

    session_id: str
    request_id: str
    step: int
    agent: str
    input_summary: str
    output: str
    thought_process: str
    decision: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None
    duration_ms: float
    status: str


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
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    chunks: int = 0
    started: float = 0.0
    first_token: float | None = None
    ended: float = 0.0
    status: str = DONE

    @property
    def output(self) -> str:
        return "".join(self.parts)

    @property
    def is_router(self) -> bool:
        return not self.route.is_fixed


def routing_instructions(route: Route, agents: Mapping[str, AgentSpec]) -> str:
    """What a router is told about its choices; generated from the targets' role descriptions."""
    lines = ["", "You can hand the work on to:"]
    for target in route.next:
        if target == END:
            lines.append("- END: the work is finished; the answer goes to the user")
        else:
            role = agents[target].role if target in agents else ""
            lines.append(f"- {target}: {role}" if role else f"- {target}")
    choices = "|".join("END" if t == END else t for t in route.next)
    lines.append(f"End your reply with exactly one line: NEXT: <{choices}>")
    return "\n".join(lines)


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


async def _next_chunk(stream: AsyncIterator[ChatChunk]) -> ChatChunk | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


class AgentPipeline:
    """A :class:`~ailab.services.turns.ChatPipeline` that runs a graph of agents (see module docstring)."""

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

    async def run(self, turn: Turn) -> AsyncIterator[PipelineEvent]:
        """Run ``turn`` through the pipeline; see the module docstring for the states."""
        started = self._clock()
        deadline = started + self.bounds.time_budget_seconds
        steps: list[_Step] = []
        trace: list[str] = []
        stopped = ""
        current = self.spec.entry
        while True:
            step = _Step(number=len(steps) + 1, agent=self.agents[current], route=self.spec.routes[current])
            steps.append(step)
            yield AgentStart(current)
            # aclosing: when our consumer closes us, the step's own clean-up (cut_off) runs at once.
            async with aclosing(self._run_step(turn, step, steps[:-1], deadline)) as events:
                async for event in events:
                    yield event
            target, note = self._route(step, steps, deadline)
            if "stopped: " in note:
                stopped = note[note.index("stopped: ") :]
            record = self._record(turn, step, target, note)
            await self.store.save(record)
            trace.append(f"[{step.number}] {current}: {self._summary(step)}")
            trace.append(f"[{step.number}] {current} -> {target}" + (f" ({note})" if note else ""))
            yield Decision(current, target)
            yield AgentEnd(current)
            if target == END:
                break
            current = target
        trace.append(stopped or f"completed in {len(steps)} step{'s' if len(steps) > 1 else ''}")
        yield self._final(steps, trace, started)

    async def _run_step(
        self, turn: Turn, step: _Step, earlier: list[_Step], deadline: float
    ) -> AsyncGenerator[PipelineEvent, None]:
        """Stream one agent's answer into ``step``; stores it itself only when it is cut or fails."""
        step.started = self._clock()
        stream: AsyncIterator[ChatChunk] | None = None
        try:
            provider, model_name = self.providers.resolve(step.agent.model or turn.model)
            step.model = await model_id_of(provider, model_name)
            request = self._request(turn, step, earlier, model_name)
            stream = provider.stream(request)
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(_next_chunk(stream), remaining)
                if chunk is None:
                    break
                if chunk.usage is not None:
                    step.usage = chunk.usage
                if chunk.delta:
                    if step.first_token is None:
                        step.first_token = self._clock()
                    step.chunks += 1
                    step.parts.append(chunk.delta)
                    yield Delta(chunk.delta, step.agent.name)
        except TimeoutError:
            step.status = TIMEOUT
        except (GeneratorExit, asyncio.CancelledError):
            step.status = CUT_OFF
            await self._finish(self._close(stream), self._save_failed(turn, step, "cut off by the client"))
            raise
        except Exception as exc:
            step.status = ERROR
            reason = exc.message if isinstance(exc, AILabError) else type(exc).__name__
            await self._finish(self._close(stream), self._save_failed(turn, step, f"error: {reason}"))
            raise
        finally:
            step.ended = self._clock()
        await self._close(stream)
        self._observe(step)

    def _request(self, turn: Turn, step: _Step, earlier: list[_Step], model_name: str) -> ChatRequest:
        agent = step.agent
        system = agent.system_prompt
        if step.is_router:
            system += "\n" + routing_instructions(step.route, self.agents)
        if earlier:
            shown = earlier[-CONTEXT_STEPS:]
            work = "\n\n".join(f"[{s.agent.name}] {_clip(s.output, CONTEXT_CHARS)}" for s in shown)
            # No closing instruction after the work: small models echo such lines into their answer.
            content = f"{turn.message}\n\nWork so far:\n{work}"
            names = ", ".join(f"{s.agent.name} (step {s.number})" for s in shown)
            step.input_summary = _clip(f"request + output of {names}: {turn.message}", SUMMARY_CHARS)
        else:
            content = turn.message
            step.input_summary = _clip(turn.message, SUMMARY_CHARS)
        limits = [n for n in (agent.max_tokens, turn.max_tokens) if n is not None]
        return ChatRequest(
            model=model_name,
            messages=[ChatMessage("system", system), *_recent(turn.history), ChatMessage("user", content)],
            max_tokens=min(limits) if limits else None,
            temperature=agent.temperature if agent.temperature is not None else turn.temperature,
        )

    def _route(self, step: _Step, steps: list[_Step], deadline: float) -> tuple[str, str]:
        """Where the run goes after ``step`` and a note on why (empty when the agent decided)."""
        if step.status == TIMEOUT:
            return END, f"stopped: time budget ({self.bounds.time_budget_seconds:g}s)"
        route = step.route
        note = ""
        if route.is_fixed:
            target = route.next[0]
        else:
            parsed = parse_decision(step.output, route.next, self.spec.routes)
            if parsed.target is not None:
                target = parsed.target
            else:
                target = route.default
                note = f"default route: {parsed.problem}"
                ran = {s.agent.name for s in steps}
                if target != END and target in ran:
                    note += f"; {target} already ran, so end"
                    target = END
        if target == END:
            return END, note
        prefix = f"wanted {target}; " if not note else f"{note}; wanted {target}; "
        if len(steps) >= self.bounds.max_steps:
            return END, f"{prefix}stopped: max steps ({self.bounds.max_steps})"
        if self._clock() >= deadline:
            return END, f"{prefix}stopped: time budget ({self.bounds.time_budget_seconds:g}s)"
        return target, note

    def _summary(self, step: _Step) -> str:
        if step.is_router:
            lines = protocol_lines(step.output)
            if lines:
                return " | ".join(_one_line(line, 120) for line in lines)
        return _one_line(step.output) or "(no output)"

    def _record(self, turn: Turn, step: _Step, decision: str | None, note: str) -> StepRecord:
        lines = protocol_lines(step.output) if step.is_router else []
        lines.append(f"-> {decision}" + (f" ({note})" if note else "") if decision else f"status: {note}")
        usage = step.usage
        return StepRecord(
            session_id=turn.session_id,
            request_id=turn.request_id,
            step=step.number,
            agent=step.agent.name,
            input_summary=step.input_summary,
            output=step.output,
            thought_process="\n".join(lines),
            decision=decision,
            model=step.model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else step.chunks,
            ttft_ms=(step.first_token - step.started) * 1000 if step.first_token is not None else None,
            duration_ms=max(0.0, (step.ended or self._clock()) - step.started) * 1000,
            status=step.status,
        )

    async def _save_failed(self, turn: Turn, step: _Step, note: str) -> None:
        step.ended = self._clock()
        self._observe(step)
        await self.store.save(self._record(turn, step, None, note))

    def _observe(self, step: _Step) -> None:
        if step.model is None:
            return
        provider, _, model = step.model.partition("/")
        usage = step.usage
        self.providers.record(
            GenerationRecord(
                provider=provider,
                model=model,
                ok=step.status in (DONE, TIMEOUT),
                duration_s=max(0.0, step.ended - step.started),
                ttft_s=step.first_token - step.started if step.first_token is not None else None,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else step.chunks,
                error_kind=None if step.status == DONE else step.status,
                stream=True,
            )
        )

    @staticmethod
    async def _close(stream: AsyncIterator[ChatChunk] | None) -> None:
        """Close the provider stream: that is what stops the generation."""
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()

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
            text = answer_text(step.output)
            if text and (step.agent.answers or has_answer_marker(step.output) or not seen_answer):
                answer, source = text, step
                seen_answer = True
        if not answer:
            for step in reversed(steps):
                if step.output.strip():
                    answer, source = step.output.strip(), step
                    break
        prompt = sum(s.usage.prompt_tokens if s.usage else 0 for s in steps)
        completion = sum(s.usage.completion_tokens if s.usage else s.chunks for s in steps)
        first = next((s.first_token for s in steps if s.first_token is not None), None)
        generating = sum(max(0.0, s.ended - s.first_token) for s in steps if s.first_token is not None)
        return Final(
            response=answer,
            model=(source or steps[-1]).model,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
            thought_process="\n".join(trace),
            ttft_ms=(first - started) * 1000 if first is not None else None,
            tokens_per_second=completion / generating if generating > 0 else None,
        )
