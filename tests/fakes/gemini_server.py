"""A fake Gemini API (v1beta): ``models/{m}:generateContent``, ``:streamGenerateContent``, ``GET models``.

Like Google's: the key may come in ``x-goog-api-key`` or ``?key=`` (tests assert our client uses only the
header), a wrong key is answered 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID`` (Google does
not use 401 for it) and a missing one 403 ``PERMISSION_DENIED``; roles must be ``user`` or ``model``;
``alt=sse`` streams ``data:`` events separated by CRLF CRLF, each with cumulative ``usageMetadata``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Generation, main

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}


_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
_SCHEMA_FIELDS = {
    "type", "format", "description", "nullable", "enum", "properties", "required", "items",
    "propertyOrdering", "minItems", "maxItems", "anyOf", "title", "minimum", "maximum",
}  # fmt: skip


def schema_problem(schema: Any) -> str | None:
    """What Gemini would refuse in a ``responseSchema`` (its OpenAPI subset), or None."""
    if not isinstance(schema, dict):
        return "Invalid JSON payload received. responseSchema: expected an object"
    for name in schema:
        if name not in _SCHEMA_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config.response_schema'"
    if schema.get("type") not in _TYPES:
        return f"Invalid value at 'generation_config.response_schema.type': {schema.get('type')!r}"
    for sub in [
        *(schema.get("properties") or {}).values(),
        *([schema["items"]] if "items" in schema else []),
    ]:
        problem = schema_problem(sub)
        if problem:
            return problem
    return None


class FakeGemini(FakeServer):
    """Google's Generative Language API on 127.0.0.1."""

    provider: ClassVar[str] = "gemini"
    default_api_key: ClassVar[str | None] = "AIza" + "SyFakeKeyForTests0123456789abcdefgh"
    default_models: ClassVar[tuple[str, ...]] = ("gemini-2.0-flash", "gemini-2.5-pro")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1beta/models", self.list_models),
            web.post("/v1beta/models/{target}", self.generate),
        ]

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key")

    def error(self, status: int, kind: str, message: str) -> web.Response:
        body: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
        if kind == "auth":
            # What Google really answers for a wrong key: 400, not 401.
            status = 400
            body = {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            }
        return self.json({"error": body}, status)

    async def list_models(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in self.models
        ]
        models.append(
            {
                "name": "models/text-embedding-004",
                "displayName": "Text Embedding 004",
                "supportedGenerationMethods": ["embedContent"],
            }
        )
        return self.json({"models": models})

    async def generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return self.error(404, "not_found", f"method {method!r} not found")
        if self.unknown_model(model):
            return self.error(
                404,
                "not_found",
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        body = self.body(request)
        contents = body.get("contents") if isinstance(body, dict) else None
        if not contents:
            return self.error(400, "invalid", "* GenerateContentRequest.contents: contents is not specified")
        if any(c.get("role") not in ("user", "model") for c in contents):
            return self.error(400, "invalid", "Please use a valid role: user, model.")
        texts = [p.get("text", "") for c in contents for p in c.get("parts", [])]
        texts += [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])]
        config = body.get("generationConfig") or {}
        limit = config.get("maxOutputTokens")
        schema = config.get("responseSchema")
        if schema is not None:
            problem = schema_problem(schema)
            if config.get("responseMimeType") != "application/json":
                problem = "responseSchema needs responseMimeType application/json"
            if problem:
                return self.error(400, "invalid", problem)
        gen = self.generation(model, texts, int(limit) if limit else None, schema)
        if method == "generateContent":
            return self.json(self.response(gen, gen.text, len(gen.pieces), final=True))
        if request.query.get("alt") != "sse":
            parts = [self.response(gen, p, i + 1, i == len(gen.pieces) - 1) for i, p in enumerate(gen.pieces)]
            return self.json(parts)
        return await self.stream_events(request, gen)

    def response(self, gen: Generation, text: str, produced: int, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = _FINISH[gen.finish_reason]
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": gen.prompt_tokens,
                "candidatesTokenCount": produced,
                "totalTokenCount": gen.prompt_tokens + produced,
            },
            "modelVersion": gen.model,
            "responseId": "fake-response",
        }

    async def stream_events(self, request: web.Request, gen: Generation) -> web.StreamResponse:
        produced = 0

        def piece(text: str) -> bytes:
            nonlocal produced
            produced += 1
            final = not self.endless and produced == len(gen.pieces)
            return b"data: " + orjson.dumps(self.response(gen, text, produced, final)) + b"\r\n\r\n"

        return await self.stream(request, "text/event-stream", [], piece, gen, list)


if __name__ == "__main__":
    main(FakeGemini)
