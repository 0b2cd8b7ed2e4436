"""Structured output on every remote provider, in its own wire format, and agents routed by it.

Each fake checks the provider's structured-output request as the real API does (OpenAI's strict
``json_schema``, a forced Anthropic tool, Gemini's ``responseSchema``, Cohere's ``json_object`` with a
schema, Ollama's ``format``) and answers an object valid against the schema, picking ``fake.choice``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ailab.providers.base import ChatMessage, ChatRequest, ResponseSchema
from ailab.providers.gemini import gemini_schema
from ailab.providers.registry import ProviderRegistry
from ailab.services.chat.agents.builtin import BUILTIN_AGENTS, BUILTIN_PIPELINE
from ailab.services.chat.agents.decisions import decision_schema
from ailab.services.chat.agents.engine import AgentPipeline, Bounds, StepRecord
from ailab.services.chat.turns import Decision, Final, Turn
from tests.fakes.base import FakeServer
from tests.providers.conftest import Backend, ProviderFactory

TARGETS = ["Worker", "QA", "Reflection", "end"]
ROUTE = ResponseSchema("route", decision_schema(TARGETS), "who acts next")


def structured_field(backend: Backend, body: dict[str, Any]) -> Any:
    """Where the provider put the schema in its request body, in its own dialect."""
    if backend.name == "anthropic":
        assert body["tool_choice"] == {"type": "tool", "name": "route"}
        (tool,) = body["tools"]
        return tool["input_schema"]
    if backend.name == "gemini":
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        return config["responseSchema"]
    if backend.name == "cohere":
        assert body["response_format"]["type"] == "json_object"
        return body["response_format"]["json_schema"]
    if backend.name == "ollama":
        return body["format"]
    assert body["response_format"]["type"] == "json_schema"
    spec = body["response_format"]["json_schema"]
    assert spec["name"] == "route" and spec["strict"] is True
    return spec["schema"]


def request(backend: Backend) -> ChatRequest:
    messages = [ChatMessage("system", "Route the request."), ChatMessage("user", "Write a poem.")]
    return ChatRequest(model=backend.model, messages=messages, max_tokens=32, response_schema=ROUTE)


async def test_a_schema_is_asked_for_in_the_providers_format_and_the_answer_is_the_object(
    backend: Backend, fake: FakeServer, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    fake.choice = "QA"
    result = await provider.chat(request(backend))
    assert orjson.loads(result.content) == {"next": "QA"}
    expected = gemini_schema(ROUTE.schema) if backend.name == "gemini" else ROUTE.schema
    assert structured_field(backend, fake.last.json) == expected

    fake.choice = "END"
    pieces = [chunk.delta async for chunk in provider.stream(request(backend))]
    assert len([p for p in pieces if p]) > 1  # streamed in pieces, like any answer
    assert orjson.loads("".join(pieces)) == {"next": "END"}


def test_gemini_schemas_use_its_dialect() -> None:
    schema = {
        "type": "object",
        "properties": {
            "next": {"type": "string", "enum": ["A", "B"]},
            "why": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["next", "why"],
        "additionalProperties": False,
    }
    assert gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "next": {"type": "STRING", "enum": ["A", "B"]},
            "why": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "propertyOrdering": ["next", "why"],
        "required": ["next", "why"],
    }


class Steps:
    """A StepStore that keeps the records in memory."""

    def __init__(self) -> None:
        self.records: list[StepRecord] = []

    async def save(self, record: StepRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("choice", ["END", "Worker"])
async def test_the_ceo_routes_by_structured_output(
    backend: Backend, fake: FakeServer, build: ProviderFactory, choice: str
) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    fake.choice = choice
    registry = ProviderRegistry([provider], default_model=f"{backend.name}/{backend.model}")
    steps = Steps()
    pipeline = AgentPipeline(
        BUILTIN_PIPELINE,
        {a.name: a for a in BUILTIN_AGENTS},
        registry,
        steps,
        Bounds(max_steps=3, time_budget_seconds=30),
    )
    turn = Turn(session_id="s", owner_id=None, request_id="r", message="Write a poem about the sea.")
    events = [event async for event in pipeline.run(turn)]
    decisions = [(e.agent, e.next) for e in events if isinstance(e, Decision)]
    final = events[-1]
    assert isinstance(final, Final)
    if choice == "END":  # the CEO answers itself and ends
        assert decisions == [("CEO", "end")]
        assert [r.routed_by for r in steps.records] == ["agent"]
        assert final.response == fake.reply
    else:  # to the Worker, back, to the Worker again: the third step is the last, so the run ends
        assert decisions == [("CEO", "Worker"), ("Worker", "CEO"), ("CEO", "end")]
        assert [r.routed_by for r in steps.records] == ["agent", "fixed", "agent"]
        assert "wanted Worker; stopped: max steps (3)" in steps.records[2].thought_process
        assert final.response == fake.reply  # the Worker's answer
    structured = [r for r in fake.requests if b'"enum"' in orjson.dumps(r.json)]
    assert len(structured) == (1 if choice == "END" else 2)  # one decision per CEO step
