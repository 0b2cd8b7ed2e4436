"""The graph runner on a scripted backend, its steps read back from SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from ailab.errors import ProviderUnavailable
from ailab.providers.base import ChatMessage, Usage
from ailab.providers.plugin import ProviderPlugin, ProviderSettings
from ailab.providers.plugins import Plugins
from ailab.providers.registry import GenerationRecord
from ailab.services.chat.agents.definitions import AgentSpec, PipelineSpec, parse_pipeline
from ailab.services.chat.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent
from tests.agents.conftest import Store, build, collect
from tests.agents.scripted import NAME, Reply, ScriptedProvider


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
            Reply("ANALYZE: arithmetic\nPLAN: let the Worker compute it", usage=Usage(30, 12)),
            Reply("6 x 7 = 42.", usage=Usage(40, 6)),
            Reply("ANALYZE: the Worker answered\nPLAN: have it checked"),
            Reply("Checked: 6 x 7 is indeed 42."),
        ],
        decisions=["Worker", "QA", "END"],
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
    assert answer.response == "6 x 7 = 42."  # the Worker's: the CEO and QA only comment
    assert answer.model == "script/m"
    assert answer.usage.prompt_tokens >= 70
    assert answer.thought_process is not None
    assert "[1] CEO: ANALYZE: arithmetic | PLAN: let the Worker compute it" in answer.thought_process
    assert "[1] CEO -> Worker (decided by the agent)" in answer.thought_process
    assert "[2] Worker -> CEO\n" in answer.thought_process
    assert "[5] CEO: (nothing to add)" in answer.thought_process  # the answer exists: it only ends
    assert answer.thought_process.endswith("completed in 5 steps")

    # Each CEO step first decides, in a structured call that offers only the targets worth asking
    # (nobody to review before there is work) ...
    decision = provider.requests[0]
    assert decision.response_schema is not None
    assert decision.response_schema.schema["properties"]["next"]["enum"] == ["Worker", "END"]
    second = provider.requests[3].response_schema
    assert second is not None
    assert second.schema["properties"]["next"]["enum"] == ["Worker", "QA", "Reflection", "END"]
    system = decision.messages[0].content
    assert "- Worker: implementation, task execution" in system  # told what each choice does
    assert "- END: you answer the request yourself" in system  # nothing answered yet
    assert decision.temperature == 0.0 and decision.max_tokens is not None and decision.max_tokens <= 32
    later = [r for r in provider.requests if r.response_schema is not None][2]
    assert "- END: the work so far answers the request" in later.messages[0].content
    # ... then writes a short brief for the agent it chose, which that agent sees as the work so far.
    brief = provider.requests[1]
    assert brief.response_schema is None
    assert "You hand the work on to Worker" in brief.messages[0].content
    assert brief.max_tokens is not None and brief.max_tokens <= 128
    assert "[CEO] ANALYZE: arithmetic" in provider.requests[2].messages[-1].content
    assert "6 x 7 = 42." in provider.requests[4].messages[-1].content  # the second decision sees it

    states = await store.states()
    assert [(s.step, s.agent, s.decision, s.routed_by, s.status) for s in states] == [
        (1, "CEO", "Worker", "agent", "done"),
        (2, "Worker", "CEO", "fixed", "done"),
        (3, "CEO", "QA", "agent", "done"),
        (4, "QA", "CEO", "fixed", "done"),
        (5, "CEO", "end", "agent", "done"),
    ]
    assert states[1].output == "6 x 7 = 42."
    assert (states[1].prompt_tokens, states[1].completion_tokens) == (40, 6)
    assert (states[0].prompt_tokens, states[0].completion_tokens) == (30 + 20, 12 + 5)  # brief + decision
    assert states[4].output == ""
    assert states[0].model == "script/m"
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in states)
    assert states[1].ttft_ms is not None
    assert "CEO (step 1)" in (states[1].input_summary or "")
    assert len({s.request_id for s in states}) == 1


async def test_a_simple_request_is_answered_by_the_ceo_itself(store: Store) -> None:
    provider = ScriptedProvider([Reply("42.")], decisions=["END"])
    events = await collect(build(provider, store), store.turn())
    assert decisions(events) == [("CEO", "end")]
    assert final(events).response == "42."
    answering = provider.requests[1]
    assert "Answer the user's request yourself now" in answering.messages[0].content
    assert [(s.agent, s.routed_by, s.output) for s in await store.states()] == [("CEO", "agent", "42.")]


async def test_an_unreadable_decision_takes_the_default_route(store: Store) -> None:
    provider = ScriptedProvider(
        [Reply("PLAN: compute it"), Reply("42")],
        # A backend that ignores the schema: text, read leniently, here with no readable decision.
        decisions=["Hello! I am happy to help you with that.", "NEXT: the moon"],
    )
    events = await collect(build(provider, store), store.turn())

    # CEO -> Worker (its default), then Worker has already run, so the default ends the run.
    assert decisions(events) == [("CEO", "Worker"), ("Worker", "CEO"), ("CEO", "end")]
    trace = final(events).thought_process or ""
    assert "[1] CEO -> Worker (decided by default; default route: no decision found)" in trace
    assert "unreadable decision 'the moon'; Worker already ran, so end" in trace
    assert final(events).response == "42"
    states = await store.states()
    assert [(s.decision, s.routed_by) for s in states] == [
        ("Worker", "default"),
        ("CEO", "fixed"),
        ("end", "default"),
    ]
    assert "default route" in (states[0].thought_process or "")


async def test_a_decision_in_text_is_read_when_the_backend_ignores_the_schema(store: Store) -> None:
    provider = ScriptedProvider([Reply("It is 42.")], decisions=["ANALYZE: easy\nNEXT: END"])
    events = await collect(build(provider, store), store.turn())
    assert decisions(events) == [("CEO", "end")]
    assert [s.routed_by for s in await store.states()] == ["agent"]


async def test_a_backend_that_refuses_the_schema_is_asked_in_plain_text(store: Store) -> None:
    provider = ScriptedProvider([Reply("PLAN: go"), Reply("42")], decisions=["NEXT: Worker", "NEXT: END"])
    provider.refuse_schema = True
    events = await collect(build(provider, store), store.turn())
    assert decisions(events) == [("CEO", "Worker"), ("Worker", "CEO"), ("CEO", "end")]
    assert [s.routed_by for s in await store.states()] == ["agent", "fixed", "agent"]
    refused, plain = provider.requests[0], provider.requests[1]
    assert refused.response_schema is not None
    assert plain.response_schema is None
    assert "Reply with one line: NEXT: <Worker|END>" in plain.messages[0].content


async def test_a_backend_whose_plugin_declares_no_schema_output_is_asked_in_plain_text_at_once(
    store: Store,
) -> None:
    provider = ScriptedProvider([Reply("PLAN: go"), Reply("42")], decisions=["NEXT: Worker", "NEXT: END"])
    provider.refuse_schema = True  # it would refuse: it is never asked
    pipeline = build(provider, store)
    plugin = ProviderPlugin(name=NAME, settings=ProviderSettings, factory=lambda *_: None)
    pipeline.providers.plugins = Plugins({NAME: plugin}, {})  # Capabilities() : no json_schema
    events = await collect(pipeline, store.turn())
    assert decisions(events) == [("CEO", "Worker"), ("Worker", "CEO"), ("CEO", "end")]
    assert all(r.response_schema is None for r in provider.requests)
    assert "Reply with one line: NEXT: <Worker|END>" in provider.requests[0].messages[0].content


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
    agents = {name: agent(name, answers=name != "Boss") for name in ("Boss", "Doer", "Critic")}
    provider = ScriptedProvider([Reply("Here is my own answer.")], decisions=["NEXT: Critic"])
    events = await collect(build(provider, store, spec=spec, agents=agents), store.turn())
    assert decisions(events) == [("Boss", "end")]
    assert "'Critic' is not allowed here" in (final(events).thought_process or "")
    # The schema offered only what Boss may choose.
    schema = provider.requests[0].response_schema
    assert schema is not None and schema.schema["properties"]["next"]["enum"] == ["Doer", "END"]
    # Nobody produced an answer, so the router answers the request itself.
    assert final(events).response == "Here is my own answer."


async def test_max_steps_stop_a_pipeline_that_never_ends(store: Store) -> None:
    spec = parse_pipeline(
        {"name": "loop", "entry": "A", "routes": {"A": {"next": ["B", "end"], "default": "B"}, "B": ["A"]}}
    )
    provider = ScriptedProvider(
        reply_for=lambda request: Reply("brief" if "You are A" in request.messages[0].content else "more"),
        decide=lambda request: "B",
    )
    agents = {"A": agent("A"), "B": agent("B")}
    events = await collect(build(provider, store, spec=spec, agents=agents, max_steps=5), store.turn())

    assert decisions(events) == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A"), ("A", "end")]
    assert (final(events).thought_process or "").endswith("stopped: max steps (5)")
    assert "wanted B; stopped: max steps (5)" in (final(events).thought_process or "")
    states = await store.states()
    assert [s.step for s in states] == [1, 2, 3, 4, 5]
    assert states[-1].decision == "end"
    assert "stopped: max steps (5)" in (states[-1].thought_process or "")
    # Three decisions, two briefs, two answers of B; the last step has an answer already: no text.
    assert len(provider.requests) == 7
    assert states[-1].output == ""


async def test_the_time_budget_stops_a_step_that_never_finishes(store: Store) -> None:
    provider = ScriptedProvider(
        [Reply("ANALYZE: x"), Reply("Working on it", hang=True)], decisions=["Worker"]
    )
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


async def test_a_step_that_repeats_itself_is_cut(store: Store) -> None:
    spec = PipelineSpec.model_validate({"name": "one", "entry": "A", "routes": {"A": ["end"]}})
    provider = ScriptedProvider([Reply("Here: " + "la " * 200)])
    events = await collect(build(provider, store, spec=spec, agents={"A": agent("A")}), store.turn())
    pieces = [e for e in events if isinstance(e, Delta)]
    assert len(pieces) < 40
    assert provider.active == 0 and provider.closed == 1  # the stream was closed, not read to the end
    (state,) = await store.states()
    assert "cut: the output repeated itself" in (state.thought_process or "")
    assert state.status == "done"


async def test_closing_the_stream_stores_the_finished_steps_and_marks_the_cut_one(store: Store) -> None:
    provider = ScriptedProvider(
        [Reply("PLAN: hand over"), Reply("Once upon a time", hang=True)], decisions=["Worker"]
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
    assert states[1].decision is None and states[1].routed_by is None


async def test_a_cancelled_consumer_also_stores_the_cut_step(store: Store) -> None:
    provider = ScriptedProvider([Reply("The answer is", hang=True)], decisions=["END"])

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
    provider = ScriptedProvider([Reply("PLAN: go"), Reply("half an", fail=True)], decisions=["Worker"])
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
    assert [s.routed_by for s in await store.states()] == ["fixed", "fixed"]


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


async def test_the_time_budget_scales_with_the_speed_the_models_have_shown(store: Store) -> None:
    provider = ScriptedProvider()
    pipeline = build(provider, store, budget=300)
    turn = store.turn()
    assert pipeline.time_budget(turn) == 300  # nothing known about the model yet: the whole bound

    # 100 tokens/s after a 0.1 s first token: the Worker's 768 tokens take ~7.8 s, a decision ~0.4 s.
    record = GenerationRecord(NAME, "m", ok=True, duration_s=1.1, ttft_s=0.1, completion_tokens=100)
    pipeline.providers.record(record)
    speed = pipeline.providers.speeds.get(f"{NAME}/m")
    assert speed is not None and speed.tokens_per_second == pytest.approx(100)
    expected = (0.1 + 768 / 100 + 0.1 + 32 / 100) * 6 * 1.5
    assert pipeline.time_budget(turn) == pytest.approx(expected)
    assert pipeline.time_budget(store.turn(max_tokens=10)) == 30  # never under the floor
    slow = GenerationRecord(NAME, "m", ok=True, duration_s=100.5, ttft_s=0.5, completion_tokens=100)
    for _ in range(20):
        pipeline.providers.record(slow)
    assert pipeline.time_budget(turn) == 300  # a slow model gets the whole bound, never more


async def test_decision_answers_in_json_never_reach_the_answer(store: Store) -> None:
    provider = ScriptedProvider([Reply("Paris.")], decisions=[orjson.dumps({"next": "END"}).decode()])
    events = await collect(build(provider, store), store.turn("What is the capital of France?"))
    assert final(events).response == "Paris."
    assert "next" not in "".join(e.text for e in events if isinstance(e, Delta))


async def test_a_reviewer_is_offered_only_when_there_is_work_it_has_not_seen(store: Store) -> None:
    spec = parse_pipeline(
        {
            "name": "review",
            "entry": "Boss",
            "routes": {
                "Boss": {"next": ["Doer", "Critic", "end"], "default": "end"},
                "Doer": ["Boss"],
                "Critic": ["Boss"],
            },
        }
    )
    agents = {
        "Boss": agent("Boss", answers=False),
        "Doer": agent("Doer"),
        "Critic": agent("Critic", answers=False),
    }
    provider = ScriptedProvider(
        [Reply("PLAN: do it"), Reply("It is 42."), Reply("PLAN: check it"), Reply("Looks right.")],
        decisions=["Doer", "Critic", "END"],
    )
    events = await collect(build(provider, store, spec=spec, agents=agents), store.turn())
    assert decisions(events) == [
        ("Boss", "Doer"),
        ("Doer", "Boss"),
        ("Boss", "Critic"),
        ("Critic", "Boss"),
        ("Boss", "end"),
    ]
    offered = [
        r.response_schema.schema["properties"]["next"]["enum"] for r in provider.requests if r.response_schema
    ]
    # No work yet: nothing to criticise. Then the Doer's answer is new to the Critic. Then it has
    # seen everything there is: asking it again would add nothing.
    assert offered == [["Doer", "END"], ["Doer", "Critic", "END"], ["Doer", "END"]]
    assert final(events).response == "It is 42."


async def test_when_only_the_end_is_left_there_is_no_decision_to_make(store: Store) -> None:
    spec = parse_pipeline(
        {
            "name": "check",
            "entry": "Boss",
            "routes": {"Boss": {"next": ["Critic", "end"], "default": "end"}, "Critic": ["end"]},
        }
    )
    agents = {"Boss": agent("Boss", answers=False), "Critic": agent("Critic", answers=False)}
    provider = ScriptedProvider([Reply("It is 42.")])
    events = await collect(build(provider, store, spec=spec, agents=agents), store.turn())
    assert decisions(events) == [("Boss", "end")]
    assert all(r.response_schema is None for r in provider.requests)  # no decision call at all
    (state,) = await store.states()
    assert state.routed_by == "fixed"
    assert "the only choice left" in (state.thought_process or "")
    assert final(events).response == "It is 42."  # nobody else could answer: the Boss did
