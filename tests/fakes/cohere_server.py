"""A fake Cohere API: v2 ``POST /v2/chat`` (JSON or SSE ``content-delta``...``message-end``) and
``GET /v1/models``.

Errors are ``{"id", "message"}`` as Cohere's are.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Generation, main

_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS"}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps({"type": event, **data}) + b"\n\n"


def usage(gen: Generation) -> dict[str, Any]:
    counts = {"input_tokens": gen.prompt_tokens, "output_tokens": gen.completion_tokens}
    return {"billed_units": dict(counts), "tokens": counts}


class FakeCohere(FakeServer):
    """Cohere's API on 127.0.0.1."""

    provider: ClassVar[str] = "cohere"
    default_api_key: ClassVar[str | None] = "ab12CD34ef" * 4
    default_models: ClassVar[tuple[str, ...]] = ("command-r-plus-08-2024", "command-a-03-2025")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v2/chat", self.chat), web.get("/v1/models", self.list_models)]

    def error(self, status: int, kind: str, message: str) -> web.Response:
        if kind == "auth":
            message = "invalid api token"
        return self.json({"id": self.next_id("err-"), "message": message}, status)

    async def list_models(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": m,
                "endpoints": ["generate", "chat", "summarize"],
                "finetuned": False,
                "context_length": 128000,
                "tokenizer_url": None,
                "default_endpoints": ["chat"],
            }
            for m in self.models
        ]
        models.append(
            {"name": "embed-english-v3.0", "endpoints": ["embed"], "finetuned": False, "context_length": 512}
        )
        endpoint = request.query.get("endpoint")
        if endpoint:
            models = [m for m in models if endpoint in m["endpoints"]]
        return self.json({"models": models, "next_page_token": None})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = self.body(request)
        if not isinstance(body, dict) or not body.get("messages"):
            return self.error(400, "invalid", "invalid request: messages must not be empty")
        model = str(body.get("model", ""))
        if self.unknown_model(model):
            return self.error(
                404,
                "not_found",
                f"model '{model}' not found, make sure the correct model ID was used "
                "and that you have access to the model.",
            )
        texts = [str(m.get("content", "")) for m in body["messages"]]
        limit = body.get("max_tokens")
        response_format = body.get("response_format") or {}
        schema = None
        if response_format:
            if response_format.get("type") not in ("text", "json_object"):
                return self.error(
                    400, "invalid", "invalid request: response_format.type must be text or json_object"
                )
            if response_format.get("type") == "json_object":
                schema = response_format.get("json_schema") or {"type": "object"}
        gen = self.generation(model, texts, int(limit) if limit else None, schema)
        if body.get("stream"):
            return await self.stream_events(request, gen)
        return self.json(
            {
                "id": self.next_id("chat-"),
                "finish_reason": _FINISH[gen.finish_reason],
                "message": {"role": "assistant", "content": [{"type": "text", "text": gen.text}]},
                "usage": usage(gen),
            }
        )

    async def stream_events(self, request: web.Request, gen: Generation) -> web.StreamResponse:
        message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
        head = [
            sse("message-start", {"id": self.next_id("chat-"), "delta": {"message": message}}),
            sse(
                "content-start", {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}
            ),
        ]

        def piece(text: str) -> bytes:
            return sse("content-delta", {"index": 0, "delta": {"message": {"content": {"text": text}}}})

        def tail() -> list[bytes]:
            end = {"delta": {"finish_reason": _FINISH[gen.finish_reason], "usage": usage(gen)}}
            return [sse("content-end", {"index": 0}), sse("message-end", end)]

        return await self.stream(request, "text/event-stream", head, piece, gen, tail)


if __name__ == "__main__":
    main(FakeCohere)
