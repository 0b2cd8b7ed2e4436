"""Pipelines as models of ``/v1``: listed, answered as JSON and as a stream, with the steps as reasoning."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import openai
import pytest

from ailab.config import Settings
from tests.agents.scripted import NAME, Reply, ScriptedProvider
from tests.auth.test_openai_sdk import sdk
from tests.chat.conftest import parse_sse
from tests.conftest import AppClientFactory


@pytest.fixture
async def scripted(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, ScriptedProvider]]:
    """The app with the scripted backend as the default model."""
    settings = make_settings(database_url=database_url, default_model=f"{NAME}/m")
    async with app_client(settings) as client:
        provider = ScriptedProvider()
        client.services.providers.providers[NAME] = provider  # type: ignore[attr-defined]
        client.services.providers.default_model = f"{NAME}/m"  # type: ignore[attr-defined]
        yield client, provider


def ask(content: str = "What is 6 x 7?", **extra: object) -> dict[str, object]:
    return {"model": "pipeline/agents", "messages": [{"role": "user", "content": content}], **extra}


async def test_every_pipeline_is_a_model(scripted: tuple[httpx.AsyncClient, ScriptedProvider]) -> None:
    client, _ = scripted
    ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    assert "pipeline/agents" in ids and "pipeline/direct" in ids


async def test_a_pipeline_answers_json_with_its_steps_as_reasoning(
    scripted: tuple[httpx.AsyncClient, ScriptedProvider],
) -> None:
    client, provider = scripted
    provider.script = [Reply("PLAN: compute"), Reply("6 x 7 = 42.")]
    provider.decisions = ["Worker", "END"]
    history = [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 6 x 7?"},
    ]
    answer = await client.post("/v1/chat/completions", json={"model": "pipeline/agents", "messages": history})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "6 x 7 = 42."
    assert message["reasoning_content"].startswith("[1] CEO: PLAN: compute")
    assert "[1] CEO -> Worker (decided by the agent)" in message["reasoning_content"]
    assert body["model"] == "pipeline/agents"
    assert body["usage"]["completion_tokens"] > 0
    # The earlier messages are the history; the last one is the turn.
    worker = provider.requests[2]
    assert [m.content for m in worker.messages[1:-1]] == ["Be exact.", "Hi", "Hello!"]
    assert worker.messages[-1].content.startswith("What is 6 x 7?")
    # Stateless: no session, no stored step.
    assert (await client.get("/sessions")).json()["items"] == []


async def test_a_pipeline_streams_reasoning_then_the_answer(
    scripted: tuple[httpx.AsyncClient, ScriptedProvider],
) -> None:
    client, provider = scripted
    provider.script = [Reply("PLAN: compute"), Reply("6 x 7 = 42.")]
    provider.decisions = ["Worker", "END"]
    streamed = await client.post(
        "/v1/chat/completions", json=ask(stream=True, stream_options={"include_usage": True})
    )
    events = parse_sse(streamed.text)
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning.startswith("[CEO] PLAN: compute\n[CEO -> Worker]\n[Worker] 6 x 7 = 42.")
    assert reasoning.endswith("[CEO -> end]\n")
    assert content == "6 x 7 = 42."  # the final answer, once the agents are done
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["total_tokens"] > 0


async def test_direct_streams_its_answer_as_content(
    scripted: tuple[httpx.AsyncClient, ScriptedProvider],
) -> None:
    client, provider = scripted
    provider.script = [Reply("Forty-two.")]
    streamed = await client.post(
        "/v1/chat/completions", json={**ask(stream=True), "model": "pipeline/direct"}
    )
    events = parse_sse(streamed.text)
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert content == "Forty-two."
    assert not any("reasoning_content" in e["choices"][0]["delta"] for e in events[:-1] if e["choices"])


async def test_pipeline_refusals_answer_in_openais_shape(
    scripted: tuple[httpx.AsyncClient, ScriptedProvider],
) -> None:
    client, provider = scripted
    unknown = await client.post("/v1/chat/completions", json={**ask(), "model": "pipeline/nope"})
    assert unknown.status_code == 404
    assert "pipeline/agents" in unknown.json()["error"]["message"]
    last = {"model": "pipeline/agents", "messages": [{"role": "assistant", "content": "hi"}]}
    not_user = await client.post("/v1/chat/completions", json=last)
    assert not_user.status_code == 422
    assert "last message is the user's" in not_user.json()["error"]["message"]
    assert provider.requests == []  # refused before any model was asked

    provider.script = [Reply("PLAN: go"), Reply("half", fail=True)]
    provider.decisions = ["Worker"]
    failed = await client.post("/v1/chat/completions", json=ask(stream=True))
    events = parse_sse(failed.text)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["message"] == "the scripted backend is down"


async def test_the_openai_sdk_talks_to_the_agents(
    scripted: tuple[httpx.AsyncClient, ScriptedProvider],
) -> None:
    client, provider = scripted
    provider.script = [Reply("Paris.")]
    provider.decisions = ["END"]
    token = (await client.post("/auth/tokens", json={"name": "sdk"})).json()["token"]
    async with sdk(client, token) as api:
        answer = await api.chat.completions.create(
            model="pipeline/agents", messages=[{"role": "user", "content": "Capital of France?"}]
        )
        assert answer.choices[0].message.content == "Paris."
        assert getattr(answer.choices[0].message, "reasoning_content", "").startswith("[1] CEO")
        with pytest.raises(openai.NotFoundError):
            await api.chat.completions.create(
                model="pipeline/none", messages=[{"role": "user", "content": "hi"}]
            )
