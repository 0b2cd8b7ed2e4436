"""A fake Gemini API (v1beta): ``models/{m}:generateContent``, ``:streamGenerateContent``, ``GET models``.

Like Google's: the key may come in ``x-goog-api-key`` or ``?key=`` (tests assert our client uses only the
header), a wrong key is answered 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID`` (Google does
not use 401 for it) and a missing one 403 ``PERMISSION_DENIED``; roles must be ``user`` or ``model``;
``alt=sse`` streams ``data:`` events separated by CRLF CRLF, each with cumulative ``usageMetadata``.
Parts are ``text`` or ``inlineData`` / ``inline_data`` images (both casings, as the REST API takes them;
recorded in ``images``). ``models/{m}:batchEmbedContents`` (at most 100 requests, each naming the same
model) and ``:embedContent`` answer :func:`~tests.fakes.base.bag_of_words_vector` of each content's text
(``outputDimensionality`` honoured), counting no tokens, as Google's answer counts none.

Tools: ``tools: [{"functionDeclarations": [{name, description, parameters}]}]`` (the parameters in the
same schema dialect, an OBJECT with properties), ``toolConfig.functionCallingConfig`` (``mode`` AUTO, ANY
or NONE; ``allowedFunctionNames`` only with ANY). A model turn's ``functionCall`` parts must be answered by
as many ``functionResponse`` parts (``{name, response: <object>}``) in the next turn. The fake's calls are
``functionCall`` parts (no ids; finish reason ``STOP``), whole, also when streamed. With
``thought_signature`` set it signs its first call as Gemini 3 does (``thoughtSignature`` beside the
``functionCall``), and refuses a conversation whose function call turn does not carry it back.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import (
    EMBEDDING_DIMS,
    FakeServer,
    Generation,
    PlannedCall,
    ReceivedImage,
    bag_of_words_vector,
    decode_base64,
    image_problem,
    is_embedding_model,
    main,
    quoting,
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
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "default",
}  # fmt: skip


def schema_problem(schema: Any, where: str = "generation_config.response_schema") -> str | None:
    """What Gemini would refuse in a ``responseSchema`` or a function's ``parameters`` (its OpenAPI
    subset), or None."""
    if not isinstance(schema, dict):
        return f"Invalid JSON payload received. {where}: expected an object"
    for name in schema:
        if name not in _SCHEMA_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}'"
    if schema.get("type") not in _TYPES:
        return f"Invalid value at '{where}.type': {schema.get('type')!r}"
    if schema["type"] == "OBJECT" and not schema.get("properties"):
        return f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
    for sub in [
        *(schema.get("properties") or {}).values(),
        *([schema["items"]] if "items" in schema else []),
        *(schema.get("anyOf") or []),
    ]:
        problem = schema_problem(sub, where)
        if problem:
            return problem
    return None


_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none"}


def read_tools(body: dict[str, Any]) -> tuple[dict[str, Any], str, str | None, str | None]:
    """The declared functions' parameter schemas by name, the calling mode (auto/required/function/none),
    the one allowed function, and what Gemini would refuse."""
    tools: dict[str, Any] = {}
    for index, tool in enumerate(body.get("tools") or []):
        for number, declaration in enumerate((tool or {}).get("functionDeclarations") or []):
            where = f"tools[{index}].function_declarations[{number}]"
            if not isinstance(declaration, dict) or not declaration.get("name"):
                return {}, "auto", None, f"* GenerateContentRequest.{where}.name: Name cannot be empty."
            parameters = declaration.get("parameters")
            problem = schema_problem(parameters, f"{where}.parameters") if parameters is not None else None
            if problem:
                return {}, "auto", None, problem
            tools[declaration["name"]] = parameters
    config = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if config is None:
        return tools, "auto", None, None
    mode = config.get("mode", "AUTO")
    if mode not in _MODES:
        return {}, "auto", None, f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})"
    allowed = config.get("allowedFunctionNames")
    if allowed is None:
        return tools, _MODES[mode], None, None
    if mode != "ANY":
        return {}, "auto", None, "allowed_function_names can only be set when the mode is ANY"
    unknown = [name for name in allowed if name not in tools]
    if unknown or len(allowed) != 1:  # the fake forces one function; Gemini takes several
        return {}, "auto", None, f"allowed_function_names: {allowed} must name declared functions"
    return tools, "function", allowed[0], None


def read_parts(
    contents: list[Any], signature: str | None = None
) -> tuple[list[str], list[ReceivedImage], str | None]:
    """The texts and inline images of ``contents``, and what Gemini would refuse in them (function calls
    not answered by as many responses, a call turn without the thought ``signature``)."""
    texts: list[str] = []
    images: list[ReceivedImage] = []
    calls: list[str] = []  # the names of the previous turn's function calls
    for index, content in enumerate(contents):
        parts = content.get("parts") or []
        responses = [p["functionResponse"] for p in parts if isinstance(p.get("functionResponse"), dict)]
        if calls and sorted(calls) != sorted(str(r.get("name")) for r in responses):
            return (
                [],
                [],
                (
                    "Please ensure that the number of function response parts is equal to the number of "
                    "function call parts of the function call turn."
                ),
            )
        if responses and not calls:
            return [], [], f"contents[{index}]: a function response turn must follow a function call turn"
        if any(not isinstance(r.get("response"), dict) for r in responses):
            return [], [], f"Invalid value at 'contents[{index}].parts.function_response.response'"
        call_parts = [p for p in parts if isinstance(p.get("functionCall"), dict)]
        if call_parts and content.get("role") != "model":
            return [], [], f"contents[{index}]: function calls are only allowed in model turns"
        if call_parts and signature is not None and call_parts[0].get("thoughtSignature") != signature:
            return (
                [],
                [],
                (
                    f"Function call is missing a thought_signature in functionCall parts. This is required "
                    f"for tools to work correctly. Additional data, function call `default_api:"
                    f"{call_parts[0]['functionCall'].get('name')}` , position {index + 1}."
                ),
            )
        if any(not isinstance(p["functionCall"].get("args", {}), dict) for p in call_parts):
            return [], [], f"Invalid value at 'contents[{index}].parts.function_call.args'"
        calls = [str(p["functionCall"].get("name")) for p in call_parts]
        for number, part in enumerate(parts):
            if "functionCall" in part:
                continue
            if "functionResponse" in part:
                texts.append(orjson.dumps(part["functionResponse"].get("response")).decode())
                continue
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


def last_user_text(contents: list[Any]) -> str:
    """The text of the last user turn that is not function responses."""
    for content in reversed(contents):
        parts = content.get("parts") or []
        if content.get("role") == "user" and not any("functionResponse" in part for part in parts):
            return " ".join(str(part.get("text", "")) for part in parts)
    return ""


class FakeGemini(FakeServer):
    """Google's Generative Language API on 127.0.0.1."""

    provider: ClassVar[str] = "gemini"
    default_api_key: ClassVar[str | None] = "AIza" + "SyFakeKeyForTests0123456789abcdefgh"
    default_models: ClassVar[tuple[str, ...]] = ("gemini-2.0-flash", "gemini-2.5-pro")
    max_embedding_inputs: ClassVar[int | None] = 100
    thought_signature: str | None = None  # set: sign calls, and want the signature back (Gemini 3)

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
        texts, images, problem = read_parts(contents, self.thought_signature)
        if problem:
            return self.error(400, "invalid", problem)
        tools, mode, forced, problem = read_tools(body)
        if problem:
            return self.error(400, "invalid", problem)
        if tools:
            self.tools_received.append(body["tools"])
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
        last = contents[-1]
        results = [
            orjson.dumps(part["functionResponse"].get("response")).decode()
            for part in last.get("parts") or []
            if last.get("role") == "user" and isinstance(part.get("functionResponse"), dict)
        ]
        calls = self.plan_calls(tools, mode, forced, last_user_text(contents), bool(results))
        reply = quoting(results) if results and not calls else None
        gen = self.generation(model, texts, int(limit) if limit else None, schema, reply)
        if calls:
            produced = sum(len(call.pieces()) for call in calls)
            answer = self.response(gen, "", produced, final=True, calls=calls)
            if method == "generateContent" or request.query.get("alt") != "sse":
                return self.json(answer if method == "generateContent" else [answer])
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b"data: " + orjson.dumps(answer) + b"\r\n\r\n")
            await response.write_eof()
            return response
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

    def response(
        self, gen: Generation, text: str, produced: int, final: bool, calls: list[PlannedCall] | None = None
    ) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": text}]
        if calls:
            parts = [{"functionCall": {"name": call.name, "args": call.arguments}} for call in calls]
            if self.thought_signature is not None:
                parts[0]["thoughtSignature"] = self.thought_signature
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
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
