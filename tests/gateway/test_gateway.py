"""The OpenAI-compatible gateway through the official ``openai`` SDK: models, completions, streams with
usage, errors, the byte pass-through to an OpenAI-compatible upstream, and plugin discovery."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from ailab.providers.registry import GenerationRecord
from tests.fakes.openai_server import FakeOpenAI

LOCAL = "local/smollm2-135m-instruct"
HI = [{"role": "user", "content": "Say hello."}]


async def test_models_lists_every_backend(sdk: openai.AsyncOpenAI) -> None:
    ids = [model.id async for model in sdk.models.list()]
    assert LOCAL in ids
    assert "openai-compat/echo" in ids
    assert all("/" in model_id for model_id in ids)


@pytest.mark.slow  # the embedded model
async def test_embedded_model_completion_and_stream_with_usage(
    sdk: openai.AsyncOpenAI, records: list[GenerationRecord]
) -> None:
    completion = await sdk.chat.completions.create(model=LOCAL, messages=HI, max_tokens=6)  # type: ignore[arg-type]
    assert completion.object == "chat.completion"
    assert completion.model == LOCAL
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens <= 6
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )

    stream = await sdk.chat.completions.create(
        model=LOCAL,
        messages=HI,  # type: ignore[arg-type]
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens >= 1
    assert [r.ok for r in records] == [True, True]
    assert records[1].stream and records[1].ttft_s is not None


async def test_unknown_model_is_not_found(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.chat.completions.create(model="nowhere/model", messages=HI)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(model="local/other-model", messages=HI)  # type: ignore[arg-type]


async def test_bad_requests_answer_openai_errors(
    upstream_client: httpx.AsyncClient, sdk: openai.AsyncOpenAI
) -> None:
    broken = await upstream_client.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="messages"):
        await sdk.chat.completions.create(model=LOCAL, messages=[])
    anonymous = await upstream_client.get("/v1/models", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert set(anonymous.json()["error"]) >= {"message", "type", "code"}


async def test_pass_through_forwards_and_returns_the_upstreams_answer(
    sdk: openai.AsyncOpenAI, upstream: FakeOpenAI, records: list[GenerationRecord]
) -> None:
    completion = await sdk.chat.completions.create(
        model="openai-compat/echo",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}],
        temperature=0.5,
        seed=7,
    )
    assert completion.choices[0].message.content == "echo: ping"
    assert completion.id == "chatcmpl-00000001"  # the upstream's own answer, not a translation
    assert upstream.last.json == {
        "model": "echo",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}],
        "temperature": 0.5,
        "seed": 7,
    }
    assert completion.usage is not None
    assert records[-1].prompt_tokens == completion.usage.prompt_tokens
    assert records[-1].completion_tokens == 2 and records[-1].ok  # "echo: ", "ping"


async def test_pass_through_stream_counts_usage_the_client_did_not_ask_for(
    sdk: openai.AsyncOpenAI, upstream: FakeOpenAI, records: list[GenerationRecord]
) -> None:
    stream = await sdk.chat.completions.create(model="openai-compat/echo", messages=HI, stream=True)  # type: ignore[arg-type]
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: Say hello."
    assert all(c.choices for c in chunks)  # the usage-only event the gateway asked for is hidden
    assert upstream.last.json["stream_options"] == {"include_usage": True}
    assert records[-1].completion_tokens == 3 and records[-1].ttft_s is not None

    stream = await sdk.chat.completions.create(
        model="openai-compat/echo",
        messages=HI,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_pass_through_keeps_the_upstreams_bytes(upstream_client: httpx.AsyncClient) -> None:
    body = {
        "model": "openai-compat/echo",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await upstream_client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    first = orjson.loads(events[0].removeprefix("data: "))
    assert first["model"] == "echo" and first["usage"] is None  # exactly as the upstream wrote it


async def test_upstream_errors_keep_their_status_and_shape(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        await sdk.chat.completions.create(model="openai-compat/missing", messages=HI)  # type: ignore[arg-type]
