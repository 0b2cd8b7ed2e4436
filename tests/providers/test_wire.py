"""The pure parts: each wire format's transforms, SSE/NDJSON decoding and error reading, without HTTP."""

from __future__ import annotations

import email.utils
import time

import pytest

from ailab.errors import (
    ModelNotFound,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from ailab.providers import anthropic, cohere, gemini, ollama
from ailab.providers import openai_wire as wire
from ailab.providers.base import ChatChunk, ChatMessage, ChatRequest, Usage
from ailab.providers.sse import LineDecoder, SSEDecoder, SSEEvent
from ailab.providers.transport import origin
from ailab.providers.upstream_errors import error_message, retry_after_seconds, scrub, status_error

MESSAGES = [
    ChatMessage("system", "Rule one."),
    ChatMessage("system", "Rule two."),
    ChatMessage("user", "a"),
    ChatMessage("user", "b"),
    ChatMessage("assistant", "c"),
]


# -- SSE and NDJSON --------------------------------------------------------------------------------


def test_sse_events_split_across_chunks_and_crlf() -> None:
    decoder = SSEDecoder()
    stream = b'event: message_start\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: comment\n\ndata: tail\n\n'
    events = []
    for i in range(len(stream)):  # one byte at a time: the worst split
        events += decoder.feed(stream[i : i + 1])
    assert events == [SSEEvent("message_start", '{"a":\n1}'), SSEEvent("message", "tail")]
    assert decoder.flush() == []


def test_sse_flush_returns_an_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: é".encode()[:-1]) == []  # half a UTF-8 character
    assert decoder.feed("data: é".encode()[-1:]) == []
    assert decoder.flush() == [SSEEvent("message", "é")]


def test_ndjson_lines() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert decoder.feed(b":2}\n{") == [b'{"b":2}']
    assert decoder.flush() == [b"{"]


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad key", "type": "x"}}', "bad key"),
        (b'{"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}', "model: x"),
        (b'{"error": "model \\"x\\" not found"}', 'model "x" not found'),
        (b'{"id": "1", "message": "invalid api token"}', "invalid api token"),
        (b'{"detail": "nope"}', "nope"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "no detail given"),
    ],
)
def test_error_message_shapes(body: bytes, message: str) -> None:
    assert error_message(body) == message


def test_status_error_mapping() -> None:
    assert isinstance(status_error("openai", 401, "m"), ProviderAuthError)
    assert isinstance(status_error("openai", 403, "m"), ProviderAuthError)
    assert isinstance(status_error("openai", 404, "m"), ModelNotFound)
    limited = status_error("openai", 429, "m", "3")
    assert isinstance(limited, ProviderRateLimited)
    assert limited.retry_after == 3
    assert isinstance(status_error("openai", 503, "m"), ProviderUnavailable)
    rejected = status_error("openai", 400, "context too long")
    assert type(rejected) is ProviderRejected and rejected.status == 400
    assert "context too long" in rejected.message
    other = status_error("openai", 409, "conflict")
    assert type(other) is ProviderError and other.status == 502


def test_retry_after_forms() -> None:
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (retry_after_seconds(later) or 0) <= 61


def test_scrub_and_origin_hide_secrets() -> None:
    assert (
        scrub("Incorrect API key provided: sk-secret-1234", "sk-secret-1234")
        == "Incorrect API key provided: ***"
    )
    assert origin("https://user:pw@api.example.com:8443/v1/x?key=s") == "https://api.example.com:8443"


# -- OpenAI ----------------------------------------------------------------------------------------


def test_openai_body_and_response() -> None:
    request = ChatRequest("m", MESSAGES, max_tokens=3, extra={"seed": 1, "model": "ignored"})
    body = wire.build_chat_body(request, stream=False, max_tokens_field="max_completion_tokens")
    assert body["model"] == "m"
    assert body["seed"] == 1
    assert body["max_completion_tokens"] == 3
    assert "stream_options" not in body
    assert len(body["messages"]) == 5
    result = wire.parse_chat_response(
        {
            "model": "m-2024",
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 1},
        },
        "m",
    )
    assert (result.content, result.model, result.finish_reason, result.usage) == (
        "hi",
        "m-2024",
        "stop",
        Usage(4, 1),
    )


def test_openai_stream_state_holds_usage_for_the_end() -> None:
    state = wire.StreamState()
    chunks = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": None}]},
        {"choices": [{"delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}},
    ]
    out = [state.feed(c) for c in chunks]
    assert out == [None, ChatChunk("Hel"), ChatChunk("lo"), None, None]
    assert state.final() == ChatChunk(finish_reason="length", usage=Usage(2, 2))


def test_openai_models() -> None:
    models = wire.parse_models({"data": [{"id": "a", "owned_by": "o", "max_model_len": 8192}, {"x": 1}]})
    assert [(m.id, m.owned_by, m.context_window) for m in models] == [("a", "o", 8192)]


# -- Anthropic ---------------------------------------------------------------------------------------


def test_anthropic_body_merges_roles_and_lifts_system() -> None:
    body = anthropic.build_body(ChatRequest("claude", MESSAGES, top_p=0.5), stream=True)
    assert body == {
        "model": "claude",
        "max_tokens": anthropic.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}],
        "system": "Rule one.\n\nRule two.",
        "stream": True,
        "top_p": 0.5,
    }


def test_anthropic_stream_events() -> None:
    state = anthropic.StreamState()
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    ]
    assert [c for c in map(state.feed, events) if c] == [ChatChunk("Hi")]
    assert state.done
    assert state.final() == ChatChunk(finish_reason="end_turn", usage=Usage(7, 3))
    with pytest.raises(ProviderUnavailable, match="Overloaded"):
        state.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def test_anthropic_response() -> None:
    data = {
        "content": [{"type": "text", "text": "a"}, {"type": "tool_use"}, {"type": "text", "text": "b"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    result = anthropic.parse_response(data, "claude")
    assert (result.content, result.finish_reason, result.usage) == ("ab", "max_tokens", Usage(1, 2))


# -- Gemini ------------------------------------------------------------------------------------------


def test_gemini_body_roles_and_config() -> None:
    body = gemini.build_body(ChatRequest("g", MESSAGES, stop=["x"]))
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
            {"role": "model", "parts": [{"text": "c"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Rule one."}, {"text": "Rule two."}]},
        "generationConfig": {"stopSequences": ["x"]},
    }
    assert gemini.model_path("models/gemini-2.0-flash") == "models/gemini-2.0-flash"
    assert gemini.model_path("a/b?key=x") == "models/a%2Fb%3Fkey%3Dx"  # cannot escape the path


def test_gemini_stream_usage_is_cumulative() -> None:
    state = gemini.StreamState()

    def event(text: str, produced: int, finish: str | None = None) -> dict[str, object]:
        candidate: dict[str, object] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        return {
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": produced},
        }

    assert state.feed(event("Hel", 1)) == ChatChunk("Hel")
    assert state.feed(event("lo", 2, "STOP")) == ChatChunk("lo")
    assert state.final() == ChatChunk(finish_reason="STOP", usage=Usage(5, 2))
    with pytest.raises(ProviderRateLimited):
        state.feed({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}})


def test_gemini_blocked_prompt_and_models() -> None:
    result = gemini.parse_response({"promptFeedback": {"blockReason": "SAFETY"}}, "g")
    assert (result.content, result.finish_reason) == ("", "SAFETY")
    models = gemini.parse_models(
        {
            "models": [
                {
                    "name": "models/g1",
                    "inputTokenLimit": 10,
                    "supportedGenerationMethods": ["generateContent"],
                },
                {"name": "models/e1", "supportedGenerationMethods": ["embedContent"]},
            ]
        }
    )
    assert [(m.id, m.context_window) for m in models] == [("g1", 10)]


# -- Cohere ------------------------------------------------------------------------------------------


def test_cohere_body_and_stream() -> None:
    body = cohere.build_body(ChatRequest("c", MESSAGES[:3], temperature=0.0, top_p=0.9), stream=False)
    assert body["messages"][0] == {"role": "system", "content": "Rule one."}
    assert (body["temperature"], body["p"], body["stream"]) == (0.0, 0.9, False)
    state = cohere.StreamState()
    events = [
        {"type": "message-start", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Yo"}}}},
        {"type": "content-end", "index": 0},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "COMPLETE",
                "usage": {
                    "billed_units": {"input_tokens": 9, "output_tokens": 9},
                    "tokens": {"input_tokens": 3, "output_tokens": 1},
                },
            },
        },
    ]
    assert [c for c in map(state.feed, events) if c] == [ChatChunk("Yo")]
    assert state.final() == ChatChunk(finish_reason="COMPLETE", usage=Usage(3, 1))


# -- Ollama ------------------------------------------------------------------------------------------


def test_ollama_lines() -> None:
    state = ollama.StreamState()
    assert state.feed({"message": {"role": "assistant", "content": "Hi"}, "done": False}) == ChatChunk("Hi")
    assert (
        state.feed({"message": {"content": ""}, "done": True, "prompt_eval_count": 4, "eval_count": 1})
        is None
    )
    assert state.done
    assert state.final() == ChatChunk(finish_reason="stop", usage=Usage(4, 1))
    with pytest.raises(ProviderUnavailable, match="out of memory"):
        state.feed({"error": "out of memory"})
    body = ollama.build_body(ChatRequest("llama3", MESSAGES[:1], stop=["x"]), stream=True)
    assert body["options"] == {"stop": ["x"]}
