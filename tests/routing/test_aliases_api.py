"""Aliases through the app: a model id in ``/v1/models``, ``/chat``, the benchmark and the official SDK
(forwarded bytes for OpenAI-wire deployments, translated for others), with a failing deployment."""

from __future__ import annotations

import base64
import json

import openai
import pytest

from ailab.services.chat.direct import DirectPipeline
from ailab.services.chat.pipelines import Pipelines
from ailab.services.models import model_rows
from ailab.services.routing.router import AliasProvider, ForwardingAliasProvider
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.conftest import sdk_for
from tests.routing.conftest import AliasApp, MakeRouting, alias_yaml, provider_of
from tests.support.images import png

HI = [{"role": "user", "content": "Say hello."}]


async def test_an_alias_is_a_model_in_v1_models_chat_and_the_benchmark(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    async with alias_app(alias_yaml(a, b)) as client:
        listed = (await client.get("/v1/models")).json()["data"]
        assert {"id": "fast", "object": "model", "created": 0, "owned_by": "ailab"} in listed
        assert "openai-compat/m" in [m["id"] for m in listed]

        chat = await client.post("/chat", json={"message": "hi", "model": "fast", "pipeline": "direct"})
        assert chat.status_code == 200, chat.text
        assert chat.json()["status"] == "success" and chat.json()["response"] == "from a"

        a.fail_status = 500
        again = await client.post(
            "/chat", json={"message": "hi", "model": "alias/fast", "pipeline": "direct"}
        )
        assert again.json()["response"] == "from b"

        bench = await client.post("/benchmark/llm", params={"model_name": "fast", "iterations": 2})
        assert bench.status_code == 200, bench.text
        assert b.last.json["model"] == "m"


async def test_the_official_sdk_talks_to_an_alias_and_never_sees_a_failing_deployment(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    async with alias_app(alias_yaml(a, b)) as client:
        assert isinstance(provider_of(client, "fast"), ForwardingAliasProvider)
        sdk = sdk_for(client)
        completion = await sdk.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == "from a"

        a.fail_status = 503
        completion = await sdk.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == "from b"
        assert completion.usage is not None and completion.usage.completion_tokens == 2

        a.fail_status, a.retry_after = 429, "30"
        stream = await sdk.chat.completions.create(model="fast", messages=HI, stream=True)  # type: ignore[arg-type]
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from b"
        assert all(c.usage is None for c in chunks)  # the usage the gateway asked for stays hidden
        await sdk.close()


async def test_a_forwarded_stream_that_breaks_after_its_first_bytes_is_the_clients_error(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    async with alias_app(alias_yaml(a, b)) as client:
        a.drop_after = 1
        sdk = sdk_for(client)
        stream = await sdk.chat.completions.create(model="fast", messages=HI, stream=True)  # type: ignore[arg-type]
        pieces: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                pieces.extend(choice.delta.content or "" for choice in chunk.choices)

        with pytest.raises(openai.APIError) as caught:
            await read()
        assert "unreachable" in caught.value.message or "mid-stream" in caught.value.message
        assert "".join(pieces) == "from "
        assert b.requests == []  # no second answer after the first bytes went out
        assert [s.in_flight for s in client.services.routing.get("fast").status] == [0, 0]  # type: ignore[attr-defined]
        await sdk.close()


async def test_two_ollama_hosts_behind_one_alias_are_translated_and_failed_over(
    alias_app: AliasApp, a: FakeOpenAI
) -> None:
    async with FakeOllama(reply="from ollama 1") as one, FakeOllama(reply="from ollama 2") as two:
        yaml = (
            "aliases:\n  - name: local-llama\n    deployments:\n      - ollama/llama3:latest\n"
            f"      - {{model: ollama/llama3:latest, base_url: '{two.base_url}'}}\n"
            "    fallbacks: [openai-compat/m]\n"
        )
        async with alias_app(yaml, ollama_base_url=one.base_url) as client:
            provider = provider_of(client, "local-llama")
            assert isinstance(provider, AliasProvider) and not isinstance(provider, ForwardingAliasProvider)
            sdk = sdk_for(client)
            completion = await sdk.chat.completions.create(model="local-llama", messages=HI)  # type: ignore[arg-type]
            assert completion.choices[0].message.content == "from ollama 1"
            assert completion.model == "local-llama"

            one.fail_status = 500
            stream = await sdk.chat.completions.create(model="local-llama", messages=HI, stream=True)  # type: ignore[arg-type]
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "from ollama 2"

            two.fail_status = 500
            completion = await sdk.chat.completions.create(model="local-llama", messages=HI)  # type: ignore[arg-type]
            assert completion.choices[0].message.content == "from a"  # the fallback
            await sdk.close()


async def test_an_alias_whose_every_deployment_fails_answers_an_openai_error(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = b.fail_status = 500
    async with alias_app(alias_yaml(a, b, retries=0)) as client:
        sdk = sdk_for(client)
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
        assert caught.value.status_code == 502
        assert "every deployment and fallback of 'fast' failed" in str(caught.value.message)
        await sdk.close()


async def test_ai_lab_models_list_shows_aliases_and_the_alias_as_default(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    async with make_routing(alias_yaml(a, b)) as routing:
        routing.registry.default_model = "fast"
        rows = await model_rows(routing.registry, Pipelines([DirectPipeline(routing.registry)]))
    by_id = {row.id: row for row in rows}
    assert (by_id["fast"].kind, by_id["fast"].state, by_id["fast"].default) == ("alias", "ready", True)
    assert by_id["openai-compat/m"].default is False
    assert [row.id for row in rows].index("fast") < [row.id for row in rows].index("pipeline/direct")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def test_tools_go_through_an_alias_whose_every_model_calls_them_and_are_refused_otherwise(
    alias_app: AliasApp, a: FakeOpenAI
) -> None:
    async with FakeOllama() as one, FakeOllama() as two:
        one.tool_calls = [("get_weather", {"city": "Paris"})]
        yaml = (
            "aliases:\n  - name: tooled\n    deployments:\n      - ollama/qwen2.5:0.5b\n"
            f"      - {{model: ollama/qwen2.5:0.5b, base_url: '{two.base_url}'}}\n"
            "  - name: mixed\n    deployments: [ollama/qwen2.5:0.5b, ollama/llama3:latest]\n"
        )
        async with alias_app(yaml, ollama_base_url=one.base_url) as client:
            sdk = sdk_for(client)
            ask = [{"role": "user", "content": "What is the weather in Paris? use the tool"}]
            completion = await sdk.chat.completions.create(model="tooled", messages=ask, tools=[WEATHER])  # type: ignore[arg-type, list-item]
            calls = completion.choices[0].message.tool_calls
            assert calls is not None
            assert calls[0].function.name == "get_weather"
            assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
            assert completion.choices[0].finish_reason == "tool_calls"

            with pytest.raises(openai.BadRequestError) as refused:  # llama3 cannot: it could land there
                await sdk.chat.completions.create(model="mixed", messages=ask, tools=[WEATHER])  # type: ignore[arg-type, list-item]
            assert "cannot call tools" in str(refused.value)
            await sdk.close()


async def test_images_go_through_an_alias_whose_every_model_sees_and_are_refused_otherwise(
    alias_app: AliasApp, a: FakeOpenAI
) -> None:
    async with FakeOllama(models=["llava:latest", "gemma3:4b", "llama3:latest"]) as one:
        yaml = (
            "aliases:\n  - name: seeing\n    deployments: [ollama/llava:latest, ollama/gemma3:4b]\n"
            "  - name: mixed\n    deployments: [ollama/llava:latest, ollama/llama3:latest]\n"
        )
        async with alias_app(yaml, ollama_base_url=one.base_url) as client:
            sdk = sdk_for(client)
            url = "data:image/png;base64," + base64.b64encode(png()).decode()
            show = [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in the picture?"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ]
            completion = await sdk.chat.completions.create(model="seeing", messages=show)  # type: ignore[arg-type]
            assert completion.choices[0].message.content
            assert len(one.images) == 1  # it reached the model that sees

            with pytest.raises(openai.BadRequestError) as refused:  # llama3 cannot: it could land there
                await sdk.chat.completions.create(model="mixed", messages=show)  # type: ignore[arg-type]
            assert "cannot read images" in str(refused.value)
            assert len(one.images) == 1  # nothing sent
            await sdk.close()
