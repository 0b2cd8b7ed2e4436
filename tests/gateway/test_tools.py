"""Tools through ``/v1/chat/completions`` with the official SDK: each provider's fake answers a tool call in
its own wire format, the SDK reads it (whole, or joined from the streamed pieces), and the conversation
goes back with the result to get the final text. A model or backend that cannot do what is asked answers
400 in OpenAI's shape, naming it, before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from ailab.config import Settings
from ailab.services.gateway.chunks import openai_finish_reason
from tests.conftest import AppClientFactory
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import FakeServer
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.conftest import Lab, translated_lab

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME: Any = {"type": "function", "function": {"name": "get_time", "description": "The time now"}}
TOOLS = [WEATHER, TIME]
ASK: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
LOCAL = "local/smollm2-135m-instruct"
TRANSLATED = [
    "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.0-flash",
    "cohere/command-r-plus-08-2024",
    "ollama/qwen2.5:0.5b",
]
MODELS = [*TRANSLATED, "openai-compat/echo"]  # the last one forwarded as bytes: the fake's own answer


@pytest.fixture
async def lab(app_client: AppClientFactory, settings: Settings, upstream: FakeOpenAI) -> AsyncIterator[Lab]:
    """The app with anthropic, gemini, cohere, ollama (qwen2.5 calls tools, llama3 does not) and
    openai-compat on fakes."""
    async with translated_lab(app_client, settings, upstream) as lab:
        yield lab


def tool_names(fake: FakeServer) -> list[str]:
    """The names of the tools the fake received last, from its provider's own wire format."""
    tools = fake.tools_received[-1]
    if isinstance(fake, FakeGemini):
        return [d["name"] for d in tools[0]["functionDeclarations"]]
    if isinstance(fake, FakeAnthropic):
        return [tool["name"] for tool in tools]
    return [tool["function"]["name"] for tool in tools]


@pytest.mark.parametrize("model", MODELS)
async def test_a_tool_call_and_its_result_round_trip(lab: Lab, model: str) -> None:
    fake = lab.fake(model)
    fake.tool_calls = [("get_weather", {"city": "Paris"})]
    answer = await lab.sdk.chat.completions.create(model=model, messages=ASK, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id
    assert (call.function.name, orjson.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert tool_names(fake) == ["get_weather", "get_time"]

    # The result goes back (the assistant message as the SDK gave it, content null), the answer quotes it.
    conversation = [
        *ASK,
        choice.message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
    ]
    final = await lab.sdk.chat.completions.create(model=model, messages=conversation, tools=TOOLS)
    assert final.choices[0].finish_reason not in ("tool_calls", None)
    assert final.choices[0].message.tool_calls is None
    text = final.choices[0].message.content or ""
    assert text.startswith("The tool said:") and "21" in text


@pytest.mark.parametrize("model", MODELS)
async def test_streamed_tool_calls_are_joined_by_the_sdk(lab: Lab, model: str) -> None:
    fake = lab.fake(model)
    fake.tool_calls = [("get_weather", {"city": "Paris"}), ("get_time", {})]
    async with lab.sdk.chat.completions.stream(model=model, messages=ASK, tools=TOOLS) as stream:
        pieces = [event async for event in stream if event.type == "tool_calls.function.arguments.delta"]
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert len({c.id for c in calls}) == 2 and all(c.id for c in calls)
    assert pieces  # the arguments arrived as the SDK's argument deltas

    conversation = [
        *ASK,
        choice.message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "21 degrees"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
    ]
    stream = await lab.sdk.chat.completions.create(
        model=model, messages=conversation, tools=TOOLS, stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text.startswith("The tool said:") and "21 degrees" in text and "noon" in text


@pytest.mark.parametrize(
    ("model", "choice", "wire"),
    [
        ("anthropic/claude-sonnet-4-5", "required", {"type": "any"}),
        ("anthropic/claude-sonnet-4-5", "get_time", {"type": "tool", "name": "get_time"}),
        ("gemini/gemini-2.0-flash", "required", {"functionCallingConfig": {"mode": "ANY"}}),
        (
            "gemini/gemini-2.0-flash",
            "get_time",
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
        ),
        ("cohere/command-r-plus-08-2024", "required", "REQUIRED"),
        ("cohere/command-r-plus-08-2024", "get_time", "REQUIRED"),  # with only get_time offered
    ],
)
async def test_a_tool_choice_forces_the_call(lab: Lab, model: str, choice: str, wire: Any) -> None:
    named: Any = {"type": "function", "function": {"name": choice}}
    answer = await lab.sdk.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, tool_choice="required" if choice == "required" else named
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.function.name == ("get_weather" if choice == "required" else "get_time")
    sent = lab.fake(model).last.json
    assert sent.get("tool_choice", sent.get("toolConfig")) == wire


async def test_gemini_gets_its_thought_signature_back_through_the_call_id(lab: Lab) -> None:
    gemini = lab.fakes["gemini"]
    gemini.thought_signature = "c2lnbmVkIGJ5IGdlbWluaQ=="  # the fake refuses a call turn without it
    model = "gemini/gemini-2.0-flash"
    messages = [*ASK[:1], {"role": "user", "content": "Please use the tool."}]
    answer = await lab.sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    message = answer.choices[0].message
    (call,) = message.tool_calls or []
    conversation = [
        *messages,
        message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = await lab.sdk.chat.completions.create(model=model, messages=conversation, tools=TOOLS)
    assert final.choices[0].message.content == 'The tool said: {"output":"sunny"}'


async def test_response_formats_reach_translated_backends(lab: Lab) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    for model in ("gemini/gemini-2.0-flash", "anthropic/claude-sonnet-4-5", "ollama/llama3:latest"):
        answer = await lab.sdk.chat.completions.create(
            model=model, messages=ASK, response_format=response_format
        )
        assert orjson.loads(answer.choices[0].message.content or "") == {"city": "text"}
    assert lab.fakes["ollama"].last.json["format"] == schema
    # Neutral values of fields the path does not read are taken; seed goes where the backend has one.
    await lab.sdk.chat.completions.create(
        model="gemini/gemini-2.0-flash", messages=ASK, seed=7, n=1, logprobs=False
    )
    assert lab.fakes["gemini"].last.json["generationConfig"] == {"seed": 7}
    answer = await lab.sdk.chat.completions.create(
        model="cohere/command-r-plus-08-2024", messages=ASK, response_format={"type": "json_object"}
    )
    assert lab.fakes["cohere"].last.json["response_format"] == {"type": "json_object"}
    assert isinstance(orjson.loads(answer.choices[0].message.content or ""), dict)


@pytest.mark.parametrize(
    ("model", "extra", "says"),
    [
        (LOCAL, {"tools": TOOLS}, f"model '{LOCAL}' cannot call tools"),
        ("pipeline/direct", {"tools": TOOLS}, "model 'pipeline/direct' cannot call tools"),
        ("pipeline/direct", {"seed": 7}, "model 'pipeline/direct' takes no 'seed'"),
        ("ollama/llama3:latest", {"tools": TOOLS}, "model 'ollama/llama3:latest' cannot call tools"),
        (
            "ollama/qwen2.5:0.5b",
            {"tools": TOOLS, "tool_choice": "required"},
            "ollama cannot force a tool call",
        ),
        ("gemini/gemini-2.0-flash", {"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ("anthropic/claude-sonnet-4-5", {"response_format": {"type": "json_object"}}, "no JSON mode"),
        ("anthropic/claude-sonnet-4-5", {"logprobs": True}, "'logprobs' is not supported"),
        ("anthropic/claude-sonnet-4-5", {"seed": 7}, "anthropic cannot take 'seed'"),
        ("cohere/command-r-plus-08-2024", {"n": 2}, "'n' is not supported"),
        (
            "anthropic/claude-sonnet-4-5",
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "'nope', which is not one of the request's tools",
        ),
        (
            "gemini/gemini-2.0-flash",
            {"messages": [*ASK, {"role": "tool", "tool_call_id": "call_x", "content": "sunny"}]},
            "answers no call of an earlier assistant message",
        ),
    ],
    ids=[
        "local",
        "pipeline",
        "pipeline-seed",
        "ollama-model-without-tools",
        "ollama-forced-choice",
        "gemini-no-parallel-switch",
        "anthropic-json-object",
        "unknown-field",
        "anthropic-seed",
        "several-choices",
        "unknown-named-tool",
        "orphan-tool-result",
    ],
)
async def test_what_cannot_be_done_answers_400_naming_it(
    lab: Lab, model: str, extra: dict[str, Any], says: str
) -> None:
    for stream in (False, True):
        body = {"model": model, "messages": ASK, "stream": stream, **extra}
        answer = await lab.client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert says in error["message"]
        assert error["type"] == "invalid_request_error"
    for fake in lab.fakes.values():
        assert not any(r.path in ("/v1/messages", "/v2/chat", "/api/chat") for r in fake.requests)
        assert not any(":generateContent" in r.path or "GenerateContent" in r.path for r in fake.requests)


@pytest.mark.parametrize("model", TRANSLATED)
async def test_a_translated_answer_ends_with_openais_finish_reason(lab: Lab, model: str) -> None:
    ask: Any = [{"role": "user", "content": "Say hello."}]
    completion = await lab.sdk.chat.completions.create(model=model, messages=ask)
    assert completion.choices[0].finish_reason == "stop"  # not end_turn, STOP or COMPLETE
    stream = await lab.sdk.chat.completions.create(model=model, messages=ask, stream=True)
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_each_backends_finish_reason_reads_as_openais() -> None:
    said = {
        None: "stop",
        "end_turn": "stop",
        "STOP": "stop",
        "COMPLETE": "stop",
        "max_tokens": "length",
        "MAX_TOKENS": "length",
        "length": "length",
        "tool_use": "tool_calls",
        "TOOL_CALL": "tool_calls",
        "SAFETY": "content_filter",
        "refusal": "content_filter",
        "something new": "stop",
    }
    assert {reason: openai_finish_reason(reason) for reason in said} == said
