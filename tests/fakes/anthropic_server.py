"""A fake Anthropic Messages API: ``POST /v1/messages`` (JSON or typed SSE events), ``GET /v1/models``.

Checks what the real API checks: ``x-api-key``, the ``anthropic-version`` header, ``max_tokens`` present,
only ``user``/``assistant`` roles in ``messages`` (the system prompt is top-level), content as a string
or blocks (``text``, non-empty; ``image`` with a ``base64`` source whose bytes match its ``media_type``,
recorded in ``images``). Errors are ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Generation, ReceivedImage, decode_base64, image_problem, main

_ERROR_TYPES = {
    "auth": "authentication_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "server": "api_error",
    "invalid": "invalid_request_error",
}
_STOP = {"stop": "end_turn", "length": "max_tokens"}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps({"type": event, **data}) + b"\n\n"


def forced_tool(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The tool ``tool_choice`` forces (None when the model may answer in text), or what is wrong."""
    choice = body.get("tool_choice")
    tools = body.get("tools") or []
    for tool in tools:
        if (
            not isinstance(tool, dict)
            or not tool.get("name")
            or not isinstance(tool.get("input_schema"), dict)
        ):
            return None, "tools: each tool needs a name and an input_schema object"
        if tool["input_schema"].get("type") != "object":
            return None, "tools.input_schema.type: Input should be 'object'"
    if not isinstance(choice, dict) or choice.get("type") != "tool":
        return None, None
    named = [t for t in tools if t["name"] == choice.get("name")]
    if not named:
        return None, f"tool_choice: tool {choice.get('name')!r} not found in tools"
    return named[0], None


def read_messages(messages: list[Any]) -> tuple[list[str], list[ReceivedImage], str | None]:
    """The texts and images of ``messages``, and what the Messages API would refuse in them."""
    texts: list[str] = []
    images: list[ReceivedImage] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for number, block in enumerate(content if isinstance(content, list) else []):
            where = f"messages.{index}.content.{number}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                if not block.get("text"):
                    return [], [], f"{where}: text content blocks must be non-empty"
                texts.append(str(block["text"]))
            elif kind == "image":
                source = block.get("source") or {}
                data = decode_base64(source.get("data"))
                if source.get("type") != "base64" or data is None:
                    return [], [], f"{where}.source: expected a base64 source with valid data"
                problem = image_problem(str(source.get("media_type")), data)
                if problem:
                    return [], [], f"{where}.source: {problem}"
                images.append(ReceivedImage(str(source["media_type"]), data))
            else:
                return [], [], f"{where}.type: unexpected block type {kind!r}"
    return texts, images, None


class FakeAnthropic(FakeServer):
    """Anthropic's API on 127.0.0.1."""

    provider: ClassVar[str] = "anthropic"
    default_api_key: ClassVar[str | None] = "sk-ant-test-0123456789abcdefghijkl"
    default_models: ClassVar[tuple[str, ...]] = ("claude-3-5-haiku-latest", "claude-sonnet-4-5")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self.messages), web.get("/v1/models", self.list_models)]

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("x-api-key")

    def error(self, status: int, kind: str, message: str) -> web.Response:
        if kind == "auth":
            message = "invalid x-api-key"
        body = {"type": "error", "error": {"type": _ERROR_TYPES.get(kind, "api_error"), "message": message}}
        return self.json(body, status)

    async def list_models(self, request: web.Request) -> web.Response:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-01-01T00:00:00Z",
            }
            for m in self.models
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return self.json({"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("anthropic-version") is None:
            return self.error(400, "invalid", "anthropic-version: header is required")
        body = self.body(request)
        if not isinstance(body, dict):
            return self.error(400, "invalid", "body: expected an object")
        if "max_tokens" not in body:
            return self.error(400, "invalid", "max_tokens: Field required")
        messages = body.get("messages") or []
        if any(m.get("role") not in ("user", "assistant") for m in messages):
            return self.error(400, "invalid", "messages: roles must be 'user' or 'assistant'")
        model = str(body.get("model", ""))
        if self.unknown_model(model):
            return self.error(404, "not_found", f"model: {model}")
        system = body.get("system") or ""
        texts, images, problem = read_messages(messages)
        if problem:
            return self.error(400, "invalid", problem)
        self.images += images
        texts.insert(0, str(system))
        tool, problem = forced_tool(body)
        if problem:
            return self.error(400, "invalid", problem)
        gen = self.generation(model, texts, int(body["max_tokens"]), tool["input_schema"] if tool else None)
        if tool is not None:
            gen.extra["tool"] = tool["name"]
        if body.get("stream"):
            return await self.stream_events(request, gen)
        content: dict[str, Any] = {"type": "text", "text": gen.text}
        if tool is not None:
            content = {
                "type": "tool_use",
                "id": self.next_id("toolu_"),
                "name": tool["name"],
                "input": orjson.loads(gen.text),
            }
        return self.json(
            {
                "id": self.next_id("msg_"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [content],
                "stop_reason": "tool_use" if tool is not None else _STOP[gen.finish_reason],
                "stop_sequence": None,
                "usage": {"input_tokens": gen.prompt_tokens, "output_tokens": gen.completion_tokens},
            }
        )

    async def stream_events(self, request: web.Request, gen: Generation) -> web.StreamResponse:
        message = {
            "id": self.next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": gen.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": gen.prompt_tokens, "output_tokens": 1},
        }
        tool = gen.extra.get("tool")
        block: dict[str, Any] = {"type": "text", "text": ""}
        if tool is not None:
            block = {"type": "tool_use", "id": self.next_id("toolu_"), "name": tool, "input": {}}
        head = [
            sse("message_start", {"message": message}),
            sse("content_block_start", {"index": 0, "content_block": block}),
            sse("ping", {}),
        ]

        def piece(text: str) -> bytes:
            if tool is not None:
                delta = {"type": "input_json_delta", "partial_json": text}
                return sse("content_block_delta", {"index": 0, "delta": delta})
            return sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})

        def tail() -> list[bytes]:
            return [
                sse("content_block_stop", {"index": 0}),
                sse(
                    "message_delta",
                    {
                        "delta": {
                            "stop_reason": "tool_use" if tool is not None else _STOP[gen.finish_reason],
                            "stop_sequence": None,
                        },
                        "usage": {"output_tokens": gen.completion_tokens},
                    },
                ),
                sse("message_stop", {}),
            ]

        return await self.stream(request, "text/event-stream", head, piece, gen, tail)


if __name__ == "__main__":
    main(FakeAnthropic)
