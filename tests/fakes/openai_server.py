"""A fake OpenAI API: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``.

Answers as api.openai.com does (the official ``openai`` SDK accepts it): ``chat.completion`` JSON, or
``chat.completion.chunk`` SSE events ending with ``data: [DONE]``, with the usage chunk (empty
``choices``) when ``stream_options.include_usage`` is set; errors as ``{"error": {message, type, param,
code}}``. Also the team's fast upstream for the gateway benchmark::

    python -m tests.fakes.openai_server --port 9100     # any key accepted, nothing recorded

:class:`FakeOpenAI` is also the base of the Azure OpenAI and Hugging Face fakes (same wire, other URLs,
headers and error shapes).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Generation, main, now

SSE = "text/event-stream"
_ERROR_TYPES = {
    "auth": ("invalid_request_error", "invalid_api_key"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server": ("server_error", None),
    "invalid": ("invalid_request_error", None),
}


class FakeOpenAI(FakeServer):
    """OpenAI's chat completions API on 127.0.0.1."""

    provider: ClassVar[str] = "openai"
    default_api_key: ClassVar[str | None] = "sk-test-openai-0123456789abcdefghij"
    default_models: ClassVar[tuple[str, ...]] = ("gpt-4o-mini", "gpt-4o")
    owned_by: ClassVar[str] = "openai"

    def base_path(self) -> str:
        return "/v1"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/models", self.list_models),
            web.get("/v1/models/{model:.+}", self.get_model),
            web.post("/v1/chat/completions", self.chat_completions),
        ]

    def error(self, status: int, kind: str, message: str) -> web.Response:
        error_type, code = _ERROR_TYPES.get(kind, ("invalid_request_error", None))
        return self.json(
            {"error": {"message": message, "type": error_type, "param": None, "code": code}}, status
        )

    def model_object(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1700000000, "owned_by": self.owned_by}

    async def list_models(self, request: web.Request) -> web.Response:
        return self.json({"object": "list", "data": [self.model_object(m) for m in self.models]})

    async def get_model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if self.unknown_model(model):
            return self.error(404, "not_found", f"The model `{model}` does not exist")
        return self.json(self.model_object(model))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = self.body(request)
        if not isinstance(body, dict) or not body.get("messages"):
            return self.error(400, "invalid", "'messages' is a required property")
        return await self.complete(request, body, str(body.get("model", "")))

    async def complete(self, request: web.Request, body: dict[str, Any], model: str) -> web.StreamResponse:
        """Answer a chat completion for ``model`` (validated here), JSON or SSE."""
        if self.unknown_model(model):
            return self.error(
                404,
                "not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
            )
        texts = [str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict)]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        schema, problem = response_schema(body.get("response_format"))
        if problem:
            return self.error(400, "invalid", problem)
        gen = self.generation(model, texts, int(limit) if limit else None, schema)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self.stream_chunks(request, gen, include_usage)
        return self.json(self.completion(gen))

    def completion(self, gen: Generation) -> dict[str, Any]:
        return {
            "id": self.next_id("chatcmpl-"),
            "object": "chat.completion",
            "created": now(),
            "model": gen.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": gen.finish_reason,
                }
            ],
            "usage": usage(gen),
        }

    async def stream_chunks(
        self, request: web.Request, gen: Generation, include_usage: bool
    ) -> web.StreamResponse:
        # One dict reused for every chunk: the fake must be fast enough to benchmark a gateway with.
        chunk: dict[str, Any] = {
            "id": self.next_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": now(),
            "model": gen.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
        if include_usage:
            chunk["usage"] = None

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**chunk, "choices": choices, **extra}) + b"\n\n"

        head = [event(chunk["choices"])]

        def piece(text: str) -> bytes:
            return event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

        def tail() -> list[bytes]:
            events = [event([{"index": 0, "delta": {}, "finish_reason": gen.finish_reason}])]
            if include_usage:
                events.append(event([], usage=usage(gen)))
            return [*events, b"data: [DONE]\n\n"]

        return await self.stream(request, SSE, head, piece, gen, tail)


def response_schema(response_format: Any) -> tuple[Any, str | None]:
    """The schema a ``response_format`` asks for (None: plain text) and what OpenAI would refuse in it."""
    if response_format is None:
        return None, None
    if not isinstance(response_format, dict):
        return None, "response_format: expected an object"
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}, None
    if kind != "json_schema":
        return None, None if kind == "text" else f"response_format.type: invalid value {kind!r}"
    spec = response_format.get("json_schema") or {}
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(spec.get("name", ""))):
        return None, "response_format.json_schema.name: must match ^[a-zA-Z0-9_-]{1,64}$"
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        return None, "response_format.json_schema.schema: expected an object"
    if spec.get("strict"):
        for node in _objects(schema):
            if node.get("additionalProperties") is not False:
                return (
                    None,
                    "Invalid schema: 'additionalProperties' is required to be supplied and to be false",
                )
            if sorted(node.get("required") or []) != sorted(node.get("properties") or {}):
                return None, "Invalid schema: 'required' is required to list every property"
    return schema, None


def _objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema] if schema.get("type") == "object" else []
    for sub in (schema.get("properties") or {}).values():
        if isinstance(sub, dict):
            found += _objects(sub)
    return found


def usage(gen: Generation) -> dict[str, int]:
    """OpenAI's usage object for ``gen``."""
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "total_tokens": gen.prompt_tokens + gen.completion_tokens,
    }


class FakeAzureOpenAI(FakeOpenAI):
    """Azure OpenAI: ``/openai/deployments/{deployment}/chat/completions?api-version=``, ``api-key``."""

    provider: ClassVar[str] = "azure"
    default_api_key: ClassVar[str | None] = "0123456789abcdef0123456789abcdef"
    default_models: ClassVar[tuple[str, ...]] = ("gpt4o-prod", "mini-dev")  # deployment names

    def base_path(self) -> str:
        return ""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/openai/models", self.list_models),
            web.post("/openai/deployments/{deployment}/chat/completions", self.deployment_chat),
        ]

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("api-key")

    def error(self, status: int, kind: str, message: str) -> web.Response:
        codes = {
            "auth": "401",
            "not_found": "DeploymentNotFound",
            "rate_limit": "429",
            "server": "InternalServerError",
        }
        if kind == "auth":
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
                "a valid key for an active subscription and use a correct regional API endpoint for your "
                "resource."
            )
        return self.json({"error": {"code": codes.get(kind, "BadRequest"), "message": message}}, status)

    async def list_models(self, request: web.Request) -> web.Response:
        if "api-version" not in request.query:
            return self.error(404, "not_found", "Resource not found")
        base = [{**self.model_object("gpt-4o-mini-2024-07-18"), "status": "succeeded"}]
        return self.json({"object": "list", "data": base})

    async def deployment_chat(self, request: web.Request) -> web.StreamResponse:
        if "api-version" not in request.query:
            return self.error(404, "not_found", "Resource not found")
        deployment = request.match_info["deployment"]
        if self.unknown_model(deployment):
            return self.error(
                404,
                "not_found",
                "The API deployment for this resource does not exist. If you created the deployment within "
                "the last 5 minutes, please wait a moment and try again.",
            )
        body = self.body(request)
        if not isinstance(body, dict) or not body.get("messages"):
            return self.error(400, "invalid", "'messages' is a required property")
        return await self.complete(request, body, deployment)


class FakeHuggingFace(FakeOpenAI):
    """Hugging Face's router / TGI Messages API: OpenAI's wire, ``{"error": "..."}`` errors."""

    provider: ClassVar[str] = "huggingface"
    default_api_key: ClassVar[str | None] = "hf_" + "a1B2c3D4e5" * 3
    default_models: ClassVar[tuple[str, ...]] = (
        "meta-llama/Llama-3.1-8B-Instruct",
        "HuggingFaceTB/SmolLM3-3B",
    )
    owned_by: ClassVar[str] = "huggingface"

    def error(self, status: int, kind: str, message: str) -> web.Response:
        if kind == "auth":
            message = "Invalid credentials in Authorization header"
        return self.json({"error": message, "error_type": kind}, status)


if __name__ == "__main__":
    main(FakeOpenAI)
