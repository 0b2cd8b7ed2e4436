"""The built-in ``agents`` pipeline end to end through POST /chat: on the embedded model (slow, few tokens)
and, for the hang-up, on the scripted backend so the test can see the generation stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from ailab.config import Settings
from ailab.providers.base import ChatMessage, ChatRequest, ResponseSchema
from ailab.providers.local import PLUGIN
from ailab.services.chat.agents.decisions import (
    DECISION_MAX_TOKENS,
    decision_prompt,
    decision_schema,
    label,
    read_decision,
)
from ailab.services.chat.agents.definitions import AgentSpec, Route
from tests.agents.scripted import NAME, Reply, ScriptedProvider
from tests.chat.conftest import parse_sse, stream_then_hang_up
from tests.conftest import AppClientFactory
from tests.support.provider_settings import fold, make_provider
from tests.support.server import LOCAL_THREADS

MAX_STEPS = 4


def of_type(events: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if isinstance(e, dict) and e["type"] == kind]


@pytest.mark.slow
async def test_agents_on_the_embedded_model_stream_and_store_their_steps(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(
        database_url=database_url, agent_max_steps=MAX_STEPS, agent_time_budget_seconds=120
    )
    async with app_client(settings) as client:
        started = time.monotonic()
        response = await client.post(
            "/chat",
            json={"message": "Say hello to Ada in one short sentence.", "stream": True, "max_tokens": 24},
            timeout=180,
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        events = parse_sse(response.text)
        assert events[-1] == "[DONE]"
        assert not of_type(events, "error"), events
        final = events[-2]
        assert final["type"] == "final"
        assert elapsed < 120 + 30  # within the time budget (plus the model's first load)

        starts, ends, routed = (
            of_type(events, "agent_start"),
            of_type(events, "agent_end"),
            of_type(events, "decision"),
        )
        assert starts[0]["agent"] == "CEO"
        assert 1 <= len(starts) == len(ends) == len(routed) <= MAX_STEPS
        assert routed[-1]["next"] == "end"
        assert all(d["next"] in {"Worker", "QA", "Reflection", "CEO", "end"} for d in routed)
        deltas = of_type(events, "delta")
        assert deltas
        assert {d["agent"] for d in deltas} <= {s["agent"] for s in starts}
        assert final["response"].strip()
        assert final["thought_process"].startswith("[1] CEO")

        session_id = final["session_id"]
        states = (await client.get(f"/sessions/{session_id}/agent-states")).json()["items"]
        assert [s["agent"] for s in states] == [s["agent"] for s in starts]
        assert [s["step"] for s in states] == list(range(1, len(starts) + 1))
        assert [s["decision"] for s in states] == [d["next"] for d in routed]
        assert all(s["status"] in ("done", "timeout") for s in states)
        assert all(s["model"].startswith("local/") for s in states)
        # Every routing decision was the CEO's own (structured output cannot be unreadable).
        assert [s["routed_by"] for s in states] == [
            "agent" if s["agent"] == "CEO" else "fixed" for s in states
        ]
        # Each step within its token limit (a CEO step also holds its decision's few tokens).
        assert all(0 < s["completion_tokens"] <= 24 + 32 for s in states if s["output"])

        messages = (await client.get(f"/sessions/{session_id}/messages")).json()["items"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"] == final["response"]
        assert messages[1]["thought_process"] == final["thought_process"]


async def test_a_hang_up_leaves_the_pipeline_running_and_a_cancel_stops_it_keeping_the_steps(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    provider = ScriptedProvider(
        [Reply("ANALYZE: a story"), Reply("Once upon a time there", hang=True)], decisions=["Worker"]
    )
    async with app_client(make_settings(database_url=database_url)) as client:
        client.services.providers.providers[NAME] = provider  # type: ignore[attr-defined]
        body = {"message": "A story", "model": f"{NAME}/m", "stream": True}
        seen = await stream_then_hang_up(client, body, after_deltas=6)
        assert provider.active == 1  # the client left; the Worker's generation goes on
        assert (await client.get(f"/runs/{seen.run_id}")).json()["status"] == "running"

        cancelled = await client.post(f"/runs/{seen.run_id}/cancel")
        assert cancelled.status_code == 202
        assert cancelled.json()["status"] == "cancelled"
        assert provider.active == 0  # the Worker's generation was stopped
        assert provider.closed == 2

        assert [e["agent"] for e in of_type(seen.events, "agent_start")] == ["CEO", "Worker"]
        session_id = seen.events[0]["session_id"]
        states = (await client.get(f"/sessions/{session_id}/agent-states")).json()["items"]
        assert [(s["agent"], s["status"]) for s in states] == [("CEO", "done"), ("Worker", "cut_off")]
        assert states[1]["output"].startswith("Once upon")
        messages = (await client.get(f"/sessions/{session_id}/messages")).json()["items"]
        assert [(m["role"], m["status"]) for m in messages] == [
            ("user", "complete"),
            ("assistant", "cancelled"),
        ]
        assert messages[1]["content"].startswith("Once upon")


ROUTING_REQUESTS = [
    "Hi!",
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Write a Python function that reverses a string.",
    "Is 2 + 2 = 5 correct?",
    "Explain in steps how to make tea.",
    "Thanks, that was helpful.",
    "Check this answer: the sun is a planet.",
    "Tell me a joke.",
    "Summarise the plot of Hamlet in one sentence.",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "targets", [["Worker", "QA", "Reflection", "end"], ["Coder", "end"], ["Writer", "Critic", "Editor"]]
)
async def test_grammar_constrained_decisions_on_the_embedded_model_are_always_valid(
    targets: list[str],
) -> None:
    settings = Settings(_env_file=None, **fold({"local_threads": LOCAL_THREADS, "local_context": 1024}))  # type: ignore[call-arg]
    provider = make_provider(PLUGIN, settings)
    route = Route(next=targets, default=targets[0])
    agents = {
        t: AgentSpec(name=t, role=f"the {t.lower()}", system_prompt=f"You are {t}.")
        for t in targets
        if t != "end"
    }
    allowed = {label(t) for t in targets}
    try:
        for text in ROUTING_REQUESTS:
            system = "You are the CEO.\n\n" + decision_prompt(route, agents, answered=False)
            result = await provider.chat(
                ChatRequest(
                    model="",
                    messages=[ChatMessage("system", system), ChatMessage("user", text)],
                    max_tokens=DECISION_MAX_TOKENS,
                    temperature=0.7,  # sampled, not greedy: the grammar alone must keep it valid
                    response_schema=ResponseSchema("route", decision_schema(targets)),
                )
            )
            assert orjson.loads(result.content)["next"] in allowed, result.content
            assert read_decision(result.content, route, targets).routed_by == "agent"
    finally:
        await provider.aclose()
