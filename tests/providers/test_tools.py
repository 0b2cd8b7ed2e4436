"""Tools (function calling) in each wire format, as pure transforms without HTTP: a request with tools and
a tool choice as the backend's JSON, the backend's answers (whole and streamed) as tool calls, and the
conversation that goes back with the calls and their results."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ailab.errors import InvalidInput
from ailab.providers import anthropic, cohere, gemini, ollama
from ailab.providers import openai_wire as wire
from ailab.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ResponseSchema,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    check_can_use_tools,
    uses_tools,
)
from tests.providers.plugin_example import EchoProvider

WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "The time now")  # no parameters
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
ASKED = [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather in Paris?")]
# The conversation after the model called the tool: its call, then the result.
ANSWERED = [
    *ASKED,
    ChatMessage("assistant", "", tool_calls=(CALL,)),
    ChatMessage("tool", '{"temperature": 21}', tool_call_id="call_1"),
]


def request(
    messages: list[ChatMessage] = ASKED, choice: ToolChoice | None = None, **kwargs: Any
) -> ChatRequest:
    return ChatRequest("m", messages, tools=(WEATHER, TIME), tool_choice=choice, **kwargs)


def joined(chunks: list[ChatChunk | None]) -> dict[int, dict[str, str]]:
    """Streamed tool call pieces joined by index, as the OpenAI SDK joins them."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for piece in chunk.tool_calls if chunk is not None else ():
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            call["name"] = piece.name or call["name"]
            call["arguments"] += piece.arguments
    return calls


# -- the protocol ------------------------------------------------------------------------------------


def test_a_request_uses_tools_when_it_offers_them_or_holds_calls_or_results() -> None:
    assert not uses_tools(ChatRequest("m", ASKED))
    assert uses_tools(request())
    assert uses_tools(ChatRequest("m", ANSWERED))  # a conversation with tools, even without tools now


async def test_a_provider_that_does_not_declare_tools_refuses_them() -> None:
    with pytest.raises(InvalidInput, match=r"model 'fake/echo-1' cannot call tools"):
        await check_can_use_tools(EchoProvider(), "echo-1")  # type: ignore[arg-type]


# -- OpenAI's wire ------------------------------------------------------------------------------------


def test_openai_body_tools_choice_and_tool_messages() -> None:
    body = wire.build_chat_body(
        request(ANSWERED, ToolChoice("function", "get_weather"), parallel_tool_calls=False), stream=False
    )
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": dict(WEATHER.parameters),
            "description": "The weather in a city",
        },
    }
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    assert (
        wire.build_chat_body(request(choice=ToolChoice("required")), stream=True)["tool_choice"] == "required"
    )
    assert wire.build_chat_body(ChatRequest("m", ASKED, json_object=True), stream=False)[
        "response_format"
    ] == {"type": "json_object"}


def test_openai_answers_with_tool_calls_whole_and_streamed() -> None:
    data = {
        "choices": [
            {
                "message": {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
                ]},
                "finish_reason": "tool_calls",
            }
        ]
    }  # fmt: skip
    result = wire.parse_chat_response(data, "m")
    assert result.tool_calls == (ToolCall("call_9", "get_weather", '{"city":"Oslo"}'),)
    assert (result.content, result.finish_reason) == ("", "tool_calls")
    state = wire.StreamState()
    events = [
        {"choices": [{"delta": {"role": "assistant", "content": None}}]},
        {"choices": [{"delta": {"tool_calls": [
            {"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ':"Oslo"}'}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    chunks = [state.feed(event) for event in events]
    assert joined(chunks) == {0: {"id": "call_9", "name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    assert state.final().finish_reason == "tool_calls"


# -- Anthropic ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "parallel", "wire_choice"),
    [
        (None, None, None),
        (ToolChoice("auto"), None, {"type": "auto"}),
        (ToolChoice("none"), None, {"type": "none"}),
        (ToolChoice("required"), None, {"type": "any"}),
        (ToolChoice("function", "get_time"), None, {"type": "tool", "name": "get_time"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice("required"), False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_anthropic_tools_and_choice(
    choice: ToolChoice | None, parallel: bool | None, wire_choice: dict[str, Any] | None
) -> None:
    body = anthropic.build_body(request(choice=choice, parallel_tool_calls=parallel), stream=False)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": dict(WEATHER.parameters),
            "description": "The weather in a city",
        },
        {
            "name": "get_time",
            "input_schema": {"type": "object", "properties": {}},
            "description": "The time now",
        },
    ]
    assert body.get("tool_choice") == wire_choice


def test_anthropic_conversation_with_calls_and_merged_results() -> None:
    second = ToolCall("call_2", "get_time", "{}")
    messages = [
        *ASKED,
        ChatMessage("assistant", "Let me look.", tool_calls=(CALL, second)),
        ChatMessage("tool", "21 degrees", tool_call_id="call_1"),
        ChatMessage("tool", "", tool_call_id="call_2"),
        ChatMessage("user", "And tomorrow?"),
    ]
    body = anthropic.build_body(request(messages), stream=False)
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
            ],
        },
        {  # one user message: the results first, then the text
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "21 degrees"},
                {"type": "tool_result", "tool_use_id": "call_2"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("req", "says"),
    [
        (ChatRequest("m", [*ASKED, ChatMessage("assistant", "", tool_calls=(ToolCall("c", "f", "[1]"),))]),
         "must be a JSON object"),
        (request(response_schema=ResponseSchema("x", {"type": "object"})), "tools and a response schema"),
        (ChatRequest("m", ASKED, json_object=True), "no JSON mode"),
        (request(choice=ToolChoice("function", "nope")), "not one of the request's tools"),
    ],
    ids=["arguments-not-an-object", "tools-and-schema", "json-object", "unknown-named-tool"],
)  # fmt: skip
def test_anthropic_refuses_what_it_cannot_carry(req: ChatRequest, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        anthropic.build_body(req, stream=False)


def test_anthropic_answers_with_tool_use_whole_and_streamed() -> None:
    data = {
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    result = anthropic.parse_response(data, "claude")
    assert result.content == "Checking."
    assert result.tool_calls == (ToolCall("toolu_1", "get_weather", '{"city":"Rome"}'),)
    assert result.finish_reason == "tool_calls"
    # Asked for structured output, the forced tool's input is the answer itself.
    structured = anthropic.parse_response({**data, "content": data["content"][1:]}, "claude", structured=True)
    assert (structured.content, structured.tool_calls, structured.finish_reason) == (
        '{"city":"Rome"}',
        (),
        "end_turn",
    )

    state = anthropic.StreamState()
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2,
         "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}},
        {"type": "content_block_stop", "index": 2},  # no parameters: no piece of input at all
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    chunks = [state.feed(event) for event in events]
    assert "".join(c.delta for c in chunks if c is not None) == "Checking."
    assert joined(chunks) == {
        0: {"id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Rome"}'},
        1: {"id": "toolu_2", "name": "get_time", "arguments": "{}"},
    }
    assert state.final().finish_reason == "tool_calls"


# -- Gemini ---------------------------------------------------------------------------------------------


def test_gemini_function_declarations_and_calling_config() -> None:
    body = gemini.build_body(request(choice=ToolChoice("function", "get_weather")))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "OBJECT",
                        "required": ["city"],
                        "properties": {"city": {"type": "STRING"}},
                        "propertyOrdering": ["city"],
                    },
                },
                {"name": "get_time", "description": "The time now"},  # no parameters: none declared
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    modes = {
        mode: gemini.build_body(request(choice=ToolChoice(mode)))["toolConfig"]
        for mode in ("auto", "none", "required")
    }
    assert {m: c["functionCallingConfig"]["mode"] for m, c in modes.items()} == {
        "auto": "AUTO",
        "none": "NONE",
        "required": "ANY",
    }
    with pytest.raises(InvalidInput, match="parallel_tool_calls"):
        gemini.build_body(request(parallel_tool_calls=False))
    assert gemini.build_body(ChatRequest("m", ASKED, json_object=True))["generationConfig"] == {
        "responseMimeType": "application/json"
    }  # fmt: skip


def test_gemini_conversation_names_each_result_by_its_call() -> None:
    messages = [
        *ASKED,
        ChatMessage("assistant", "", tool_calls=(CALL, ToolCall("call_2", "get_time", "{}"))),
        ChatMessage("tool", "noon", tool_call_id="call_2"),
        ChatMessage("tool", '{"temperature": 21}', tool_call_id="call_1"),
    ]
    body = gemini.build_body(request(messages))
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},  # not JSON
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 21}}},
            ],
        },
    ]
    orphan = [*ASKED, ChatMessage("tool", "noon", tool_call_id="call_404")]
    with pytest.raises(InvalidInput, match="call_404"):
        gemini.build_body(request(orphan))


def test_gemini_calls_get_ids_and_carry_their_thought_signature_back() -> None:
    data = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Lima"}}, "thoughtSignature": "c2ln"},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2},
    }  # fmt: skip
    result = gemini.parse_response(data, "gemini-3-pro")
    first, second = result.tool_calls
    assert (first.name, orjson.loads(first.arguments)) == ("get_weather", {"city": "Lima"})
    assert first.id.startswith("call_") and first.id != second.id
    assert result.finish_reason == "tool_calls"
    # Sent back, the call carries its signature again (Gemini 3 refuses a call turn without it).
    body = gemini.build_body(request([*ASKED, ChatMessage("assistant", "", tool_calls=result.tool_calls)]))
    assert [part.get("thoughtSignature") for part in body["contents"][-1]["parts"]] == ["c2ln", None]

    state = gemini.StreamState()
    text_event = {"candidates": [{"content": {"parts": [{"text": "One moment."}]}}]}
    chunks = [state.feed(text_event), state.feed(data)]
    assert chunks[0] == ChatChunk("One moment.")
    calls = joined(chunks)
    assert [(c["name"], orjson.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Lima"}),
        ("get_time", {}),
    ]
    assert state.final().finish_reason == "tool_calls"


def test_gemini_schema_inlines_refs_and_refuses_what_it_cannot_say() -> None:
    pydantic_like = {  # as pydantic writes Optional[Unit] with a Literal and a nested model
        "$defs": {"Unit": {"type": "string", "enum": ["C", "F"], "title": "Unit"}},
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}], "default": None},
            "kind": {"const": "forecast"},
            "days": {"type": ["integer", "null"], "minimum": 1},
        },
    }
    assert gemini.gemini_schema(pydantic_like) == {
        "type": "OBJECT",
        "properties": {
            "unit": {
                "type": "STRING",
                "enum": ["C", "F"],
                "title": "Unit",
                "default": None,
                "nullable": True,
            },
            "kind": {"type": "STRING", "enum": ["forecast"]},
            "days": {"type": "INTEGER", "nullable": True, "minimum": 1},
        },
        "propertyOrdering": ["unit", "kind", "days"],
    }
    refused = [
        ({"allOf": [{"type": "string"}]}, "allOf"),
        ({"$ref": "#/$defs/Node"}, "refers to itself"),
        ({"$ref": "https://example.com/schema.json"}, "local \\$refs"),
        ({"type": ["string", "integer"]}, "several types"),
    ]  # fmt: skip
    for schema, says in refused:
        node = {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}  # a linked list
        tool = Tool("t", parameters={"type": "object", "$defs": {"Node": node}, "properties": {"x": schema}})
        with pytest.raises(InvalidInput, match=f"gemini cannot take tool 't'.*{says}"):
            gemini.build_body(ChatRequest("m", ASKED, tools=(tool,)))


# -- Cohere ---------------------------------------------------------------------------------------------


def test_cohere_tools_choice_and_conversation() -> None:
    body = cohere.build_body(request(ANSWERED), stream=False)
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_weather", "get_time"]
    assert "tool_choice" not in body  # auto: Cohere's default
    assert body["messages"][2:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]  # fmt: skip
    planned = cohere.build_body(
        request([*ASKED, ChatMessage("assistant", "I will look.", tool_calls=(CALL,))]), stream=False
    )
    assert planned["messages"][-1]["tool_plan"] == "I will look."
    named = cohere.build_body(request(choice=ToolChoice("function", "get_time")), stream=False)
    assert (named["tool_choice"], [t["function"]["name"] for t in named["tools"]]) == (
        "REQUIRED",
        ["get_time"],
    )
    assert cohere.build_body(request(choice=ToolChoice("none")), stream=False)["tool_choice"] == "NONE"
    with pytest.raises(InvalidInput, match="parallel_tool_calls"):
        cohere.build_body(request(parallel_tool_calls=False), stream=False)


def test_cohere_answers_with_tool_calls_whole_and_streamed() -> None:
    call = {
        "id": "get_weather_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Kyiv"}'},
    }
    data = {
        "finish_reason": "TOOL_CALL",
        "message": {"role": "assistant", "tool_plan": "I will check the weather.", "tool_calls": [call]},
        "usage": {"tokens": {"input_tokens": 5, "output_tokens": 6}},
    }  # fmt: skip
    result = cohere.parse_response(data, "command-a")
    assert result.content == "I will check the weather."
    assert result.tool_calls == (ToolCall("get_weather_abc", "get_weather", '{"city":"Kyiv"}'),)
    assert result.finish_reason == "tool_calls"

    state = cohere.StreamState()
    start = {
        "id": "get_weather_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    events = [
        {"type": "message-start", "delta": {"message": {"role": "assistant"}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check."}}},
        {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": start}}},
        {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city":'}}}}},
        {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": '"Kyiv"}'}}}}},
        {"type": "tool-call-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"tokens": {"output_tokens": 6}}}},
    ]  # fmt: skip
    chunks = [state.feed(event) for event in events]
    assert "".join(c.delta for c in chunks if c is not None) == "I will check."
    assert joined(chunks) == {
        0: {"id": "get_weather_abc", "name": "get_weather", "arguments": '{"city":"Kyiv"}'}
    }
    assert state.done and state.final().finish_reason == "tool_calls"


# -- Ollama ---------------------------------------------------------------------------------------------


def test_ollama_tools_and_conversation_with_objects_and_tool_names() -> None:
    body = ollama.build_body(request(ANSWERED), stream=False)
    assert body["tools"] == [wire.tool_json(WEATHER), wire.tool_json(TIME)]  # OpenAI's shape
    assert body["messages"][2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": '{"temperature": 21}', "tool_name": "get_weather"},
    ]
    assert "tools" not in ollama.build_body(request(choice=ToolChoice("none")), stream=False)
    for choice in (ToolChoice("required"), ToolChoice("function", "get_time")):
        with pytest.raises(InvalidInput, match="ollama cannot force a tool call"):
            ollama.build_body(request(choice=choice), stream=False)
    assert ollama.build_body(ChatRequest("m", ASKED, json_object=True), stream=False)["format"] == "json"


def test_ollama_calls_get_ids_whole_and_streamed() -> None:
    message = {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Quito"}}},
        {"function": {"name": "get_time", "arguments": {}}},
    ]}  # fmt: skip
    result = ollama.parse_response({"message": message, "done": True, "done_reason": "stop"}, "qwen")
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("get_weather", '{"city":"Quito"}'),
        ("get_time", "{}"),
    ]
    assert all(c.id.startswith("call_") for c in result.tool_calls)
    assert result.finish_reason == "tool_calls"
    state = ollama.StreamState()
    chunk = state.feed({"message": message, "done": False})
    assert chunk is not None
    assert [(d.index, d.name) for d in chunk.tool_calls] == [(0, "get_weather"), (1, "get_time")]
    assert all(isinstance(d, ToolCallDelta) and d.id for d in chunk.tool_calls)
    state.feed({"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"})
    assert state.final().finish_reason == "tool_calls"


# -- the settings the gateway passes on in extra ----------------------------------------------------------


def test_seed_and_penalties_reach_the_backends_that_have_them() -> None:
    settings = {"seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u1"}
    req = ChatRequest("m", ASKED, extra=settings)
    assert gemini.build_body(req)["generationConfig"] == {
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }
    assert ollama.build_body(req, stream=False)["options"] == {
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }
    cohere_body = cohere.build_body(req, stream=False)
    assert {k: cohere_body[k] for k in ("seed", "presence_penalty", "frequency_penalty")} == {
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }
    with pytest.raises(InvalidInput, match="anthropic cannot take 'seed'"):
        anthropic.build_body(req, stream=False)
    assert "seed" not in anthropic.build_body(ChatRequest("m", ASKED, extra={"user": "u1"}), stream=False)


# -- the round trip -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["openai", "anthropic", "gemini", "cohere", "ollama"])
def test_a_call_parsed_from_an_answer_goes_back_with_its_result(backend: str) -> None:
    """Each backend's answer with a call, read, then sent back with the result: the result meets its call."""
    answers: dict[str, tuple[Any, Any]] = {
        "openai": (wire.parse_chat_response, {"choices": [{"message": {"tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            "finish_reason": "tool_calls"}]}),
        "anthropic": (anthropic.parse_response, {"content": [
            {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}], "stop_reason": "tool_use"}),
        "gemini": (gemini.parse_response, {"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP"}]}),
        "cohere": (cohere.parse_response, {"finish_reason": "TOOL_CALL", "message": {"tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}),
        "ollama": (ollama.parse_response, {"done": True, "message": {"content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}}),
    }  # fmt: skip
    parse, data = answers[backend]
    result = parse(data, "m")
    (call,) = result.tool_calls
    conversation = [
        *ASKED,
        ChatMessage("assistant", result.content, tool_calls=result.tool_calls),
        ChatMessage("tool", "sunny", tool_call_id=call.id),
    ]
    again = request(conversation)
    if backend == "openai":
        sent = wire.build_chat_body(again, stream=False)["messages"][-1]
        assert sent == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    elif backend == "anthropic":
        sent = anthropic.build_body(again, stream=False)["messages"][-1]
        assert sent["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]
    elif backend == "gemini":
        sent = gemini.build_body(again)["contents"][-1]
        assert sent["parts"] == [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
        ]
    elif backend == "cohere":
        sent = cohere.build_body(again, stream=False)["messages"][-1]
        assert sent == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    else:
        sent = ollama.build_body(again, stream=False)["messages"][-1]
        assert sent == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
