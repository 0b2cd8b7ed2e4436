"""The graph runner on a scripted backend, its steps read back from SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from ailab.errors import ProviderUnavailable
from ailab.providers.base import ChatMessage, Usage
from ailab.services.agents.definitions import AgentSpec, PipelineSpec, parse_pipeline
from ailab.services.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent
from tests.agents.conftest import Store, build, collect
from tests.agents.scripted import Reply, ScriptedProvider


def decisions(events: list[PipelineEvent]) -> list[tuple[str, str]]:
    return [(e.agent, e.next) for e in events if isinstance(e, Decision)]


def final(events: list[PipelineEvent]) -> Final:
    last = events[-1]
    assert isinstance(last, Final)
    return last


def agent(name: str, *, answers: bool = True) -> AgentSpec:
    return AgentSpec(name=name, role=f"the {name}", system_prompt=f"You are {name}.", answers=answers)


async def test_routing_follows_the_decisions_and_each_step_is_stored_in_order(store: Store) -> None:
    provider = ScriptedProvider(
        [
            Reply("ANALYZE: arithmetic\nPLAN: let the Worker compute it\nNEXT: Worker", usage=Usage(30, 12)),
            Reply("6 x 7 = 42.", usage=Usage(40, 6)),
            Reply("ANALYZE: the Worker answered\nPLAN: have it checked\n**Next:** `qa`."),
            Reply("Checked: 6 x 7 is indeed 42."),
            Reply('The work is done. {"next": "END"}'),
        ]
    )
    events = await collect(build(provider, store), store.turn())

    assert decisions(events) == [
        ("CEO", "Worker"),
        ("Worker", "CEO"),
        ("CEO", "QA"),
        ("QA", "CEO"),
        ("CEO", "end"),
    ]
    kinds = [type(e).__name__ for e in events if not isinstance(e, Delta)]
    assert kinds[:4] == ["AgentStart", "Decision", "AgentEnd", "AgentStart"]
    worker_text = "".join(e.text for e in events if isinstance(e, Delta) and e.agent == "Worker")
    assert worker_text == "6 x 7 = 42."

    answer = final(events)
    assert answer.response == "6 x 7 = 42."  # the Worker's: CEO and QA only comment
    assert answer.model == "script/m"
    assert answer.usage.prompt_tokens >= 70
    assert answer.thought_process is not None
    assert (
        "[1] CEO: ANALYZE: arithmetic | PLAN: let the Worker compute it | NEXT: Worker"
        in answer.thought_process
    )
    assert "[5] CEO -> end" in answer.thought_process
    assert answer.thought_process.endswith("completed in 5 steps")

    # The Worker's output feeds the next steps' input.
    assert "6 x 7 = 42." in provider.requests[2].messages[-1].content
    assert "6 x 7 = 42." in provider.requests[3].messages[-1].content
    # The CEO is told its choices, from the agents' role descriptions.
    assert "NEXT: <Worker|QA|Reflection|END>" in provider.requests[0].messages[0].content

    states = await store.states()
    assert [(s.step, s.agent, s.decision, s.status) for s in states] == [
        (1, "CEO", "Worker", "done"),
        (2, "Worker", "CEO", "done"),
        (3, "CEO", "QA", "done"),
        (4, "QA", "CEO", "done"),
        (5, "CEO", "end", "done"),
    ]
    assert states[1].output == "6 x 7 = 42."
    assert (states[1].prompt_tokens, states[1].completion_tokens) == (40, 6)
    assert states[0].model == "script/m"
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in states)
    assert states[1].ttft_ms is not None
    assert "CEO (step 1)" in (states[1].input_summary or "")
    assert len({s.request_id for s in states}) == 1


async def test_an_unreadable_decision_takes_the_default_route(store: Store) -> None:
    provider = ScriptedProvider(
        [
            Reply("Hello! I am happy to help you with that."),  # no decision at all
            Reply("42"),
            Reply("NEXT: the moon"),  # a decision, but nothing it names exists
        ]
    )
    events = await collect(build(provider, store), store.turn())

    # CEO -> Worker (its default), then Worker has already run, so the default ends the run.
    assert decisions(events) == [("CEO", "Worker"), ("Worker", "CEO"), ("CEO", "end")]
    trace = final(events).thought_process or ""
    assert "[1] CEO -> Worker (default route: no decision found)" in trace
    assert "unreadable decision 'the moon'; Worker already ran, so end" in trace
    assert final(events).response == "42"
    states = await store.states()
    assert [s.decision for s in states] == ["Worker", "CEO", "end"]
    assert "default route" in (states[0].thought_process or "")


async def test_a_decision_that_is_not_allowed_takes_the_default_route(store: Store) -> None:
    spec = parse_pipeline(
        {
            "name": "small",
            "entry": "Boss",
            "routes": {
                "Boss": {"next": ["Doer", "end"], "default": "end"},
                "Doer": ["end"],
                "Critic": ["end"],
            },
        }
    )
    agents = {name: agent(name) for name in ("Boss", "Doer", "Critic")}
    provider = ScriptedProvider([Reply("Let the critic look. NEXT: Critic")])
    events = await collect(build(provider, store, spec=spec, agents=agents), store.turn())
    assert decisions(events) == [("Boss", "end")]
    assert "'Critic' is not allowed here" in (final(events).thought_process or "")
    # Nobody else produced anything, so the router's own text is the answer.
    assert final(events).response == "Let the critic look."


async def test_max_steps_stop_a_pipeline_that_never_ends(store: Store) -> None:
    spec = parse_pipeline(
        {"name": "loop", "entry": "A", "routes": {"A": {"next": ["B", "end"], "default": "B"}, "B": ["A"]}}
    )
    provider = ScriptedProvider(reply_for=lambda request: Reply("again NEXT: B" if "You are A" in
                                                               request.messages[0].content else "more"))  # fmt: skip
    events = await collect(build(provider, store, spec=spec, agents={"A": agent("A"), "B": agent("B")}, max_steps=5),
                           store.turn())  # fmt: skip

    assert decisions(events) == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A"), ("A", "end")]
    assert (final(events).thought_process or "").endswith("stopped: max steps (5)")
    assert "wanted B; stopped: max steps (5)" in (final(events).thought_process or "")
    states = await store.states()
    assert [s.step for s in states] == [1, 2, 3, 4, 5]
    assert states[-1].decision == "end"
    assert "stopped: max steps (5)" in (states[-1].thought_process or "")
    assert len(provider.requests) == 5


async def test_the_time_budget_stops_a_step_that_never_finishes(store: Store) -> None:
    provider = ScriptedProvider([Reply("ANALYZE: x\nNEXT: Worker"), Reply("Working on it", hang=True)])
    started = time.monotonic()
    events = await collect(build(provider, store, budget=0.5), store.turn())
    assert time.monotonic() - started < 5

    assert decisions(events) == [("CEO", "Worker"), ("Worker", "end")]
    assert [e.agent for e in events if isinstance(e, AgentEnd)] == ["CEO", "Worker"]
    assert (final(events).thought_process or "").endswith("stopped: time budget (0.5s)")
    assert final(events).response == "Working on it"  # what the Worker produced before the budget ran out
    assert provider.active == 0  # the hanging stream was ended
    states = await store.states()
    assert [(s.agent, s.status, s.decision) for s in states] == [
        ("CEO", "done", "Worker"),
        ("Worker", "timeout", "end"),
    ]
    assert states[1].output == "Working on it"


async def test_closing_the_stream_stores_the_finished_steps_and_marks_the_cut_one(store: Store) -> None:
    provider = ScriptedProvider(
        [Reply("PLAN: hand over\nNEXT: Worker"), Reply("Once upon a time", hang=True)]
    )
    run = build(provider, store).run(store.turn())
    seen: list[PipelineEvent] = []
    async for event in run:
        seen.append(event)
        if isinstance(event, Delta) and event.agent == "Worker" and event.text.startswith("time"):
            break
    assert provider.active == 1
    started = time.monotonic()
    await run.aclose()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 1
    assert provider.closed_event.is_set()
    assert provider.active == 0  # the generation stopped

    assert not any(isinstance(e, Final) for e in seen)
    assert [e.agent for e in seen if isinstance(e, AgentStart)] == ["CEO", "Worker"]
    states = await store.states()
    assert [(s.step, s.agent, s.status) for s in states] == [(1, "CEO", "done"), (2, "Worker", "cut_off")]
    assert states[1].output == "Once upon a time"
    assert states[1].decision is None


async def test_a_cancelled_consumer_also_stores_the_cut_step(store: Store) -> None:
    provider = ScriptedProvider([Reply("NEXT: end hmm", hang=True)])

    async def consume() -> None:
        async for _ in build(provider, store).run(store.turn()):
            pass

    task = asyncio.create_task(consume())
    await provider.streaming.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.active == 0
    states = await store.states()
    assert [(s.agent, s.status) for s in states] == [("CEO", "cut_off")]


async def test_a_backend_failure_is_stored_and_raised(store: Store) -> None:
    provider = ScriptedProvider([Reply("NEXT: Worker"), Reply("half an", fail=True)])
    with pytest.raises(ProviderUnavailable):
        await collect(build(provider, store), store.turn())
    states = await store.states()
    assert [(s.agent, s.status) for s in states] == [("CEO", "done"), ("Worker", "error")]
    assert states[1].output == "half an"
    assert "the scripted backend is down" in (states[1].thought_process or "")


async def test_each_agent_uses_its_own_model_and_limits(store: Store) -> None:
    spec = PipelineSpec.model_validate({"name": "two", "entry": "A", "routes": {"A": ["B"], "B": ["end"]}})
    agents = {
        "A": AgentSpec(name="A", system_prompt="a", model="script/small", max_tokens=50, temperature=0.1),
        "B": AgentSpec(name="B", system_prompt="b"),
    }
    provider = ScriptedProvider([Reply("first"), Reply("second")])
    events = await collect(
        build(provider, store, spec=spec, agents=agents), store.turn(max_tokens=20, temperature=0.9)
    )
    assert [(r.model, r.max_tokens, r.temperature) for r in provider.requests] == [
        ("small", 20, 0.1),
        ("m", 20, 0.9),
    ]
    assert final(events).response == "second"
    assert [s.model for s in await store.states()] == ["script/small", "script/m"]


async def test_agents_see_the_newest_history_that_fits(store: Store) -> None:
    history = [
        ChatMessage("user", "old " * 1000),
        ChatMessage("assistant", "older answer"),
        ChatMessage("user", "recent"),
    ]
    spec = PipelineSpec.model_validate({"name": "one", "entry": "A", "routes": {"A": ["end"]}})
    provider = ScriptedProvider([Reply("ok")])
    await collect(build(provider, store, spec=spec, agents={"A": agent("A")}), store.turn(history=history))
    sent = provider.requests[0].messages
    assert [m.content for m in sent[1:]] == ["older answer", "recent", "What is 6 x 7?"]
