"""A fake Gemini API (v1beta): ``models/{m}:generateContent``, ``:streamGenerateContent``, ``GET models``.

Like Google's: the key may come in ``x-goog-api-key`` or ``?key=`` (tests assert our client uses only the
header), a wrong key is answered 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID`` (Google does
not use 401 for it) and a missing one 403 ``PERMISSION_DENIED``; roles must be ``user`` or ``model``;
``alt=sse`` streams ``data:`` events separated by CRLF CRLF, each with cumulative ``usageMetadata``.
Parts are ``text`` or ``inlineData`` / ``inline_data`` images (both casings, as the REST API takes them;
recorded in ``images``). ``models/{m}:batchEmbedContents`` (at most 100 requests, each naming the same
model) and ``:embedContent`` answer :func:`~tests.fakes.base.bag_of_words_vector` of each content's text
(``outputDimensionality`` honoured), counting no tokens, as Google's answer counts none.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import (
    EMBEDDING_DIMS,
    FakeServer,
    Generation,
    ReceivedImage,
    bag_of_words_vector,
    decode_base64,
    image_problem,
    is_embedding_model,
    main,
)

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


def read_parts(contents: list[Any]) -> tuple[list[str], list[ReceivedImage], str | None]:
    """The texts and inline images of ``contents``, and what Gemini would refuse in them."""
    texts: list[str] = []
    images: list[ReceivedImage] = []
    for index, content in enumerate(contents):
        for number, part in enumerate(content.get("parts") or []):
            inline = part.get("inlineData") or part.get("inline_data")
            if inline is None:
                texts.append(str(part.get("text", "")))
                continue
            where = f"contents[{index}].parts[{number}].inline_data"
            media_type = inline.get("mimeType") or inline.get("mime_type")
            data = decode_base64(inline.get("data"))
            if not media_type or data is None:
                return [], [], f"Invalid value at '{where}': mime_type and base64 data are required"
            problem = image_problem(str(media_type), data)
            if problem:
                return [], [], f"Invalid value at '{where}': {problem}"
            images.append(ReceivedImage(str(media_type), data))
    return texts, images, None


class FakeGemini(FakeServer):
    """Google's Generative Language API on 127.0.0.1."""

    provider: ClassVar[str] = "gemini"
    default_api_key: ClassVar[str | None] = "AIza" + "SyFakeKeyForTests0123456789abcdefgh"
    default_models: ClassVar[tuple[str, ...]] = ("gemini-2.0-flash", "gemini-2.5-pro")
    max_embedding_inputs: ClassVar[int | None] = 100

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
        if method in ("batchEmbedContents", "embedContent"):
            return self.embed(model, method, self.body(request))
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
        texts, images, problem = read_parts(contents)
        if problem:
            return self.error(400, "invalid", problem)
        self.images += images
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

    def embed(self, model: str, method: str, body: Any) -> web.Response:
        """``:batchEmbedContents`` (``{"requests": [...]}``) or ``:embedContent`` (one request)."""
        if not is_embedding_model(model):
            return self.error(
                404,
                "not_found",
                f"models/{model} is not found for API version v1beta, or is not supported for {method}.",
            )
        if not isinstance(body, dict):
            return self.error(400, "invalid", "Invalid JSON payload received.")
        requests = (
            body.get("requests") if method == "batchEmbedContents" else [{**body, "model": f"models/{model}"}]
        )
        if not isinstance(requests, list) or not requests:
            return self.error(
                400, "invalid", "* BatchEmbedContentsRequest.requests: requests is not specified"
            )
        if self.max_embedding_inputs is not None and len(requests) > self.max_embedding_inputs:
            return self.error(
                400,
                "invalid",
                f"* BatchEmbedContentsRequest.requests: at most {self.max_embedding_inputs} "
                "requests can be in one batch",
            )
        embeddings = []
        for index, item in enumerate(requests):
            if not isinstance(item, dict) or item.get("model") != f"models/{model}":
                return self.error(
                    400,
                    "invalid",
                    f"* BatchEmbedContentsRequest.requests[{index}].model: the model of every "
                    "request must match the model of the batch",
                )
            parts = (item.get("content") or {}).get("parts") or []
            text = " ".join(str(part.get("text", "")) for part in parts if isinstance(part, dict))
            dims = item.get("outputDimensionality") or EMBEDDING_DIMS
            embeddings.append({"values": bag_of_words_vector(text, int(dims))})
        if method == "embedContent":
            return self.json({"embedding": embeddings[0]})
        return self.json({"embeddings": embeddings})

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
