"""OpenAI's ``chat.completion`` answers as the gateway writes them: whole, or as chunk events.

Shared by every answer the gateway builds itself (translated providers, pipelines); pass-through
answers are the upstream's own bytes. Events are ``data: {json}\\n\\n`` lines ending with ``[DONE]``; a
failure mid-stream is an ``{"error": {...}}`` event, which the official SDK raises as an APIError.

Tool calls are OpenAI's: whole in ``message.tool_calls`` (the content null when there is no text), or in
``delta.tool_calls`` pieces that the SDK joins by their ``index``: the first piece of a call with its id,
``type: function`` and name, the next ones with pieces of its arguments.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from ailab.providers.base import ToolCall, ToolCallDelta, Usage

DONE = b"data: [DONE]\n\n"


def usage_dict(usage: Usage) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def wants_usage(payload: dict[str, Any]) -> bool:
    """Whether a streamed request asked for the usage chunk (``stream_options.include_usage``)."""
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def assistant_message(content: str, tool_calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
    """An answer's ``message``: its text, and its tool calls (then the content is null without text)."""
    if not tool_calls:
        return {"role": "assistant", "content": content}
    calls = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in tool_calls
    ]
    return {"role": "assistant", "content": content or None, "tool_calls": calls}


def tool_call_pieces(deltas: Sequence[ToolCallDelta]) -> list[dict[str, Any]]:
    """Tool call pieces as a chunk's ``delta.tool_calls``."""
    pieces = []
    for delta in deltas:
        piece: dict[str, Any] = {"index": delta.index}
        function: dict[str, Any] = {}
        if delta.id is not None:
            piece["id"] = delta.id
            piece["type"] = "function"
        if delta.name is not None:
            function["name"] = delta.name
        if delta.arguments or delta.name is not None:
            function["arguments"] = delta.arguments
        piece["function"] = function
        pieces.append(piece)
    return pieces


# Each backend's words for why a generation ended, in OpenAI's (what the SDK and its users test for).
_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "complete": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "tool_call": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "refusal": "content_filter",
    "error_toxic": "content_filter",
}


def openai_finish_reason(reason: str | None) -> str:
    """``reason`` as OpenAI says it: stop, length, tool_calls or content_filter (stop when unknown)."""
    return _FINISH_REASONS.get((reason or "stop").lower(), "stop")


def completion(model: str, message: dict[str, Any], usage: Usage, finish_reason: str) -> bytes:
    """A whole ``chat.completion`` with one choice."""
    answer = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage_dict(usage),
    }
    return orjson.dumps(answer)


def sse_error(message: str, code: str, status: int) -> bytes:
    """An OpenAI-style error event inside a stream (the SDK raises it as an APIError)."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return b"data: " + orjson.dumps({"error": {"message": message, "type": kind, "code": code}}) + b"\n\n"


class ChunkWriter:
    """The ``chat.completion.chunk`` events of one streamed answer (one id, one model)."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        if include_usage:  # as OpenAI: every chunk says "usage": null, the last one has it
            self._base["usage"] = None
        self.include_usage = include_usage

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """A chunk carrying ``delta`` (and the finish reason on the last one)."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return b"data: " + orjson.dumps({**self._base, "choices": [choice]}) + b"\n\n"

    def usage(self, usage: Usage) -> bytes:
        """The usage-only chunk (empty ``choices``)."""
        return b"data: " + orjson.dumps({**self._base, "choices": [], "usage": usage_dict(usage)}) + b"\n\n"
