"""A fake Ollama: ``POST /api/chat`` (JSON, or NDJSON when ``stream`` is true or absent), ``GET /api/tags``.

No key by default (pass ``api_key=`` to require a bearer token, as a proxy in front of Ollama would).
Errors are ``{"error": "..."}``; an unknown model is 404 ``model "x" not found, try pulling it first``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Generation, main


def stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeOllama(FakeServer):
    """Ollama's native API on 127.0.0.1."""

    provider: ClassVar[str] = "ollama"
    default_api_key: ClassVar[str | None] = None
    default_models: ClassVar[tuple[str, ...]] = ("llama3:latest", "qwen2.5:0.5b")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/chat", self.chat), web.get("/api/tags", self.tags)]

    def error(self, status: int, kind: str, message: str) -> web.Response:
        if kind == "auth":
            message = "unauthorized"
        return self.json({"error": message}, status)

    async def tags(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": m,
                "model": m,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": 4_661_224_676,
                "digest": "365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1",
                "details": {
                    "format": "gguf",
                    "family": "llama",
                    "parameter_size": "8.0B",
                    "quantization_level": "Q4_0",
                },
            }
            for m in self.models
        ]
        return self.json({"models": models})

    def _known(self, model: str) -> bool:
        # Ollama resolves "llama3" to "llama3:latest".
        return not self.unknown_model(model) or not self.unknown_model(f"{model}:latest")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = self.body(request)
        if not isinstance(body, dict):
            return self.error(400, "invalid", "invalid request body")
        model = str(body.get("model", ""))
        if not self._known(model):
            return self.error(404, "not_found", f'model "{model}" not found, try pulling it first')
        texts = [str(m.get("content", "")) for m in body.get("messages") or []]
        limit = (body.get("options") or {}).get("num_predict")
        answer_format = body.get("format")
        schema = {"type": "object"} if answer_format == "json" else answer_format
        if schema is not None and not isinstance(schema, dict):
            return self.error(400, "invalid", 'invalid format: expected "json" or a JSON schema')
        gen = self.generation(model, texts, int(limit) if limit else None, schema)
        if body.get("stream", True):
            return await self.stream_lines(request, gen)
        return self.json({**self.final(gen), "message": {"role": "assistant", "content": gen.text}})

    def final(self, gen: Generation) -> dict[str, Any]:
        return {
            "model": gen.model,
            "created_at": stamp(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": gen.finish_reason,
            "done": True,
            "total_duration": 1_000_000,
            "load_duration": 10_000,
            "prompt_eval_count": gen.prompt_tokens,
            "prompt_eval_duration": 100_000,
            "eval_count": gen.completion_tokens,
            "eval_duration": 800_000,
        }

    async def stream_lines(self, request: web.Request, gen: Generation) -> web.StreamResponse:
        def piece(text: str) -> bytes:
            line = {
                "model": gen.model,
                "created_at": stamp(),
                "message": {"role": "assistant", "content": text},
            }
            return orjson.dumps({**line, "done": False}) + b"\n"

        def tail() -> list[bytes]:
            return [orjson.dumps(self.final(gen)) + b"\n"]

        return await self.stream(request, "application/x-ndjson", [], piece, gen, tail)


if __name__ == "__main__":
    main(FakeOllama)
