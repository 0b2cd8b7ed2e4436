"""A fake Anthropic Messages API: ``POST /v1/messages`` (JSON or typed SSE events), ``GET /v1/models``.

Checks what the real API checks: ``x-api-key``, the ``anthropic-version`` header, ``max_tokens`` present,
only ``user``/``assistant`` roles in ``messages`` (the system prompt is top-level), content as a string
or blocks (``text``, non-empty; ``image`` with a ``base64`` source whose bytes match its ``media_type``,
recorded in ``images``). Errors are ``{"type": "error", "error": {"type", "message"}}``.

Tools: each needs a ``name`` and an ``input_schema`` of type object; ``tool_choice`` is ``auto``, ``any``,
``tool`` (with a ``name`` among the tools) or ``none``, only with tools, and may say
``disable_parallel_tool_use``. An assistant's ``tool_use`` blocks (``id``, ``name``, ``input`` an object)
must each be answered by a ``tool_result`` block (``tool_use_id``) in the very next user message, before
any other block there. The fake's calls are ``tool_use`` blocks with ``stop_reason: tool_use``, streamed as
``content_block_start`` (id, name, empty input) and ``input_json_delta`` pieces.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import (
    FakeServer,
    Generation,
    PlannedCall,
    ReceivedImage,
    decode_base64,
    image_problem,
    main,
    quoting,
)

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


_MODES = {"auto": "auto", "any": "required", "tool": "function", "none": "none"}


def read_tools(body: dict[str, Any]) -> tuple[dict[str, Any], str, str | None, str | None]:
    """The tools' input schemas by name, the choice's mode (auto/required/function/none), the forced
    tool, and what the Messages API would refuse."""
    tools: dict[str, Any] = {}
    for tool in body.get("tools") or []:
        if (
            not isinstance(tool, dict)
            or not tool.get("name")
            or not isinstance(tool.get("input_schema"), dict)
        ):
            return {}, "auto", None, "tools: each tool needs a name and an input_schema object"
        if tool["input_schema"].get("type") != "object":
            return {}, "auto", None, "tools.input_schema.type: Input should be 'object'"
        tools[tool["name"]] = tool["input_schema"]
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto", None, None
    if not tools:
        return {}, "auto", None, "tool_choice: may only be specified while providing tools"
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _MODES:
        return {}, "auto", None, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
    if kind == "tool" and choice.get("name") not in tools:
        return {}, "auto", None, f"tool_choice: tool {choice.get('name')!r} not found in tools"
    return tools, _MODES[kind], choice.get("name") if kind == "tool" else None, None


def read_messages(messages: list[Any]) -> tuple[list[str], list[ReceivedImage], str | None]:
    """The texts and images of ``messages``, and what the Messages API would refuse in them."""
    texts: list[str] = []
    images: list[ReceivedImage] = []
    uses: list[str] = []  # the tool_use ids of the previous (assistant) message
    for index, message in enumerate(messages):
        content = message.get("content")
        if uses and message.get("role") != "user":
            return [], [], f"messages.{index}: tool_use ids were found without tool_result blocks: {uses}"
        if isinstance(content, str):
            if uses:
                return [], [], f"messages.{index}: tool_use ids were found without tool_result blocks: {uses}"
            texts.append(content)
            continue
        answered: list[str] = []
        for number, block in enumerate(content if isinstance(content, list) else []):
            where = f"messages.{index}.content.{number}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind != "tool_result" and uses and not answered:
                return [], [], f"{where}: tool_result blocks must come first, answering {uses}"
            if kind == "tool_use":
                if message.get("role") != "assistant":
                    return [], [], f"{where}: tool_use blocks are only allowed in assistant messages"
                if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
                    return [], [], f"{where}: tool_use needs an id, a name and an input object"
                answered.append(str(block["id"]))
                continue
            if kind == "tool_result":
                if block.get("tool_use_id") not in uses:
                    return (
                        [],
                        [],
                        (
                            f"{where}: unexpected tool_use_id found in tool_result blocks: "
                            f"{block.get('tool_use_id')}. Each tool_result block must have a corresponding "
                            "tool_use block in the previous message."
                        ),
                    )
                answered.append(str(block["tool_use_id"]))
                result = block.get("content", "")
                texts.append(result if isinstance(result, str) else orjson.dumps(result).decode())
                continue
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
        missing = [use for use in uses if use not in answered]
        if message.get("role") == "user" and missing:
            return [], [], f"messages.{index}: tool_use ids were found without tool_result blocks: {missing}"
        uses = answered if message.get("role") == "assistant" else []
    return texts, images, None


def trailing_results(messages: list[Any]) -> list[str]:
    """The tool results of the last message, when it is a user's answering tool calls."""
    last = messages[-1] if messages else {}
    blocks = last.get("content") if last.get("role") == "user" else None
    results = []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            result = block.get("content", "")
            results.append(result if isinstance(result, str) else orjson.dumps(result).decode())
    return results


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))
    return ""


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
        tools, mode, forced, problem = read_tools(body)
        if problem:
            return self.error(400, "invalid", problem)
        if tools:
            self.tools_received.append(body["tools"])
        results = trailing_results(messages)
        calls = self.plan_calls(tools, mode, forced, last_user_text(messages), bool(results), "toolu_")
        if (body.get("tool_choice") or {}).get("disable_parallel_tool_use"):
            calls = calls[:1]
        reply = quoting(results) if results and not calls else None
        gen = self.generation(model, texts, int(body["max_tokens"]), None, reply)
        if calls:
            gen.pieces = [piece for call in calls for piece in call.pieces()]
            gen.finish_reason = "tool_use"
        if body.get("stream"):
            return await self.stream_events(request, gen, calls)
        content: list[dict[str, Any]] = [{"type": "text", "text": gen.text}]
        if calls:
            content = [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in calls]
        return self.json(
            {
                "id": self.next_id("msg_"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": _STOP.get(gen.finish_reason, gen.finish_reason),
                "stop_sequence": None,
                "usage": {"input_tokens": gen.prompt_tokens, "output_tokens": gen.completion_tokens},
            }
        )

    async def stream_events(
        self, request: web.Request, gen: Generation, calls: list[PlannedCall]
    ) -> web.StreamResponse:
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
        produced = gen.completion_tokens  # the calls' pieces, streamed below instead of text
        head = [sse("message_start", {"message": message})]
        if calls:  # one content block per call, its input in pieces; no text
            gen.pieces = []
            for index, call in enumerate(calls):
                block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
                head.append(sse("content_block_start", {"index": index, "content_block": block}))
                for text in call.pieces():
                    delta = {"type": "input_json_delta", "partial_json": text}
                    head.append(sse("content_block_delta", {"index": index, "delta": delta}))
                head.append(sse("content_block_stop", {"index": index}))
        else:
            block = {"type": "text", "text": ""}
            head += [sse("content_block_start", {"index": 0, "content_block": block}), sse("ping", {})]

        def piece(text: str) -> bytes:
            return sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})

        def tail() -> list[bytes]:
            stop = _STOP.get(gen.finish_reason, gen.finish_reason)
            return [
                *([] if calls else [sse("content_block_stop", {"index": 0})]),
                sse(
                    "message_delta",
                    {
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": produced},
                    },
                ),
                sse("message_stop", {}),
            ]

        return await self.stream(request, "text/event-stream", head, piece, gen, tail)


if __name__ == "__main__":
    main(FakeAnthropic)
