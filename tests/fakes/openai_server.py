"""A fake OpenAI API: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``,
``POST /v1/embeddings``.

Answers as api.openai.com does (the official ``openai`` SDK accepts it): ``chat.completion`` JSON, or
``chat.completion.chunk`` SSE events ending with ``data: [DONE]``, with the usage chunk (empty
``choices``) when ``stream_options.include_usage`` is set; errors as ``{"error": {message, type, param,
code}}``. Content may be a string or parts: ``text``, and ``image_url`` with a ``data:`` URL (recorded in
``images``; an http(s) URL is taken without fetching it). Embeddings take ``input`` as a string, strings, or
token arrays (token ``n`` is the word ``t<n>``), ``dimensions`` and ``encoding_format`` (``float`` or
``base64``), and answer :func:`~tests.fakes.base.bag_of_words_vector` of each text with its ``index``.
Tools as OpenAI takes them (``{"type": "function", "function": {name, parameters}}``, a ``tool_choice``
only with tools, ``tool`` messages answering an earlier assistant's ``tool_calls`` by id, arguments as JSON
text); a call is answered with ``finish_reason: "tool_calls"`` and null content, or streamed as
``delta.tool_calls`` pieces (id, type and name first, then the arguments in pieces).
Also the team's fast upstream for the gateway benchmark::

    python -m tests.fakes.openai_server --port 9100     # any key accepted, nothing recorded

:class:`FakeOpenAI` is also the base of the Azure OpenAI and Hugging Face fakes (same wire, other URLs,
headers and error shapes).
"""

from __future__ import annotations

import re
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
    float32_base64,
    image_problem,
    is_embedding_model,
    main,
    now,
    parse_data_url,
    quoting,
    words,
)

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
    max_embedding_inputs: ClassVar[int | None] = 2048
    too_many_inputs_status: ClassVar[int] = 400

    def base_path(self) -> str:
        return "/v1"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/models", self.list_models),
            web.get("/v1/models/{model:.+}", self.get_model),
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/embeddings", self.embeddings),
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
        texts, images, problem = read_messages(body["messages"])
        if problem:
            return self.error(400, "invalid", problem)
        self.images += images
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        schema, problem = response_schema(body.get("response_format"))
        if problem:
            return self.error(400, "invalid", problem)
        tools, mode, forced, problem = read_tools(body)
        problem = problem or tool_history_problem(body["messages"])
        if problem:
            return self.error(400, "invalid", problem)
        if tools:
            self.tools_received.append(body["tools"])
        results = trailing_results(body["messages"])
        calls = self.plan_calls(tools, mode, forced, last_user_text(body["messages"]), bool(results))
        reply = quoting(results) if results and not calls else None
        gen = self.generation(model, texts, int(limit) if limit else None, schema, reply)
        if calls:
            gen.pieces = [piece for call in calls for piece in call.pieces()]
            gen.finish_reason = "tool_calls"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self.stream_chunks(request, gen, include_usage, calls)
        return self.json(self.completion(gen, calls))

    async def embeddings(self, request: web.Request) -> web.Response:
        body = self.body(request)
        return self.embed(body, str(body.get("model", "")) if isinstance(body, dict) else "")

    def embed(self, body: Any, model: str) -> web.Response:
        """Answer an embeddings request for ``model`` (validated here) as OpenAI does."""
        if not isinstance(body, dict) or "input" not in body:
            return self.error(400, "invalid", "'input' is a required property")
        if not is_embedding_model(model):
            return self.error(
                404, "not_found", f"The model `{model}` does not exist or you do not have access to it."
            )
        texts = embedding_texts(body["input"])
        if texts is None:
            return self.error(400, "invalid", "'$.input' is invalid. Please check the API reference.")
        limit = self.max_embedding_inputs
        if limit is not None and len(texts) > limit:
            return self.error(
                self.too_many_inputs_status,
                "invalid",
                f"'$.input' is invalid: at most {limit} inputs per request, got {len(texts)}",
            )
        dims = body.get("dimensions", EMBEDDING_DIMS)
        encoding = body.get("encoding_format") or "float"
        if (
            isinstance(dims, bool)
            or not isinstance(dims, int)
            or dims < 1
            or encoding not in ("float", "base64")
        ):
            return self.error(400, "invalid", "'dimensions' or 'encoding_format' is invalid")
        data = []
        for index, text in enumerate(texts):
            vector = bag_of_words_vector(text, dims)
            embedding = float32_base64(vector) if encoding == "base64" else vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(words(text) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return self.json({"object": "list", "data": data, "model": model, "usage": usage})

    def completion(self, gen: Generation, calls: list[PlannedCall] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": gen.text, "refusal": None}
        if calls:
            message["content"] = None
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.json}}
                for c in calls
            ]
        return {
            "id": self.next_id("chatcmpl-"),
            "object": "chat.completion",
            "created": now(),
            "model": gen.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": gen.finish_reason}
            ],
            "usage": self.odd_usage if self.odd_usage is not None else usage(gen),
        }

    async def stream_chunks(
        self,
        request: web.Request,
        gen: Generation,
        include_usage: bool,
        calls: list[PlannedCall] | None = None,
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

        counted = usage(gen)  # the calls' pieces count, streamed below instead of text
        if self.odd_usage is not None:
            counted = self.odd_usage
        head = [event(chunk["choices"])]
        if calls:  # the calls instead of the text: each its id and name first, then its arguments
            gen.pieces = []
            for index, call in enumerate(calls):
                start = {"index": index, "id": call.id, "type": "function"}
                start["function"] = {"name": call.name, "arguments": ""}
                head.append(event([{"index": 0, "delta": {"tool_calls": [start]}, "finish_reason": None}]))
                for text in call.pieces():
                    more = {"index": index, "function": {"arguments": text}}
                    head.append(event([{"index": 0, "delta": {"tool_calls": [more]}, "finish_reason": None}]))

        def piece(text: str) -> bytes:
            return event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

        def tail() -> list[bytes]:
            events = [event([{"index": 0, "delta": {}, "finish_reason": gen.finish_reason}])]
            if include_usage:
                events.append(event([], usage=counted))
            return [*events, b"data: [DONE]\n\n"]

        return await self.stream(request, SSE, head, piece, gen, tail)


def read_messages(messages: Any) -> tuple[list[str], list[ReceivedImage], str | None]:
    """The texts and images of OpenAI-style messages (Cohere's v2 takes the same content parts), and what
    the API would refuse in them."""
    texts: list[str] = []
    images: list[ReceivedImage] = []
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            return [], [], f"messages[{index}]: expected an object"
        content = message.get("content")
        if not isinstance(content, list):
            texts.append(str(content or ""))
            continue
        for number, part in enumerate(content):
            where = f"messages[{index}].content[{number}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "image_url":
                if message.get("role") != "user":
                    return [], [], f"{where}: image content parts are only allowed in user messages"
                spec = part.get("image_url")
                url = spec.get("url") if isinstance(spec, dict) else None
                if isinstance(url, str) and url.startswith(("http://", "https://")):
                    continue  # the real API fetches it; the fake takes it as it is
                image = parse_data_url(url)
                if image is None:
                    return [], [], f"{where}.image_url.url: Invalid image URL: expected a base64 data URL"
                problem = image_problem(image.media_type, image.data)
                if problem:
                    return [], [], f"{where}: {problem}"
                images.append(image)
            else:
                return [], [], f"{where}.type: invalid content part type {kind!r}"
    return texts, images, None


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def read_tools(body: dict[str, Any]) -> tuple[dict[str, Any], str, str | None, str | None]:
    """OpenAI-shaped ``tools`` and ``tool_choice`` (Cohere and Ollama take the same tools): the tools'
    parameter schemas by name, the choice's mode, the forced tool, and what the API would refuse."""
    tools: dict[str, Any] = {}
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            return {}, "auto", None, f"tools[{index}]: expected {{type: function, function: {{...}}}}"
        if not _TOOL_NAME.match(str(function.get("name", ""))):
            return {}, "auto", None, f"tools[{index}].function.name: must match ^[a-zA-Z0-9_-]{{1,64}}$"
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict):
            return {}, "auto", None, f"tools[{index}].function.parameters: expected an object"
        tools[function["name"]] = parameters
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto", None, None
    if not tools:
        return {}, "auto", None, "'tool_choice' is only allowed when 'tools' are specified"
    if choice in ("auto", "none", "required"):
        return tools, choice, None, None
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if name not in tools:
        return {}, "auto", None, f"tool_choice: no tool named {name!r} in tools"
    return tools, "function", name, None


def tool_history_problem(messages: list[Any]) -> str | None:
    """What OpenAI refuses in a conversation with tools: arguments that are no JSON text, a ``tool``
    message that answers no call of the assistant message before it."""
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            open_calls = set()
            for call in message["tool_calls"]:
                arguments = (call.get("function") or {}).get("arguments")
                if not isinstance(arguments, str):
                    return f"messages[{index}].tool_calls: function.arguments must be a string"
                open_calls.add(call.get("id"))
        elif role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return (
                    f"messages[{index}]: messages with role 'tool' must be a response to a preceding "
                    "message with 'tool_calls'"
                )
        elif role != "system":
            open_calls = set()
    return None


def trailing_results(messages: list[Any]) -> list[str]:
    """The contents of the tool results the conversation ends with (none when it ends otherwise)."""
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        content = message.get("content")
        results.insert(0, content if isinstance(content, str) else orjson.dumps(content).decode())
    return results


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user message (OpenAI's shape: a string or text parts)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def embedding_texts(value: Any) -> list[str] | None:
    """The texts of an embeddings ``input`` (token arrays as words ``t<n>``), or None when OpenAI would
    refuse it (empty, or not a string, strings or token arrays)."""

    def token(value: Any) -> bool:  # JSON's 7 and 7.0 are the same integer
        return type(value) in (int, float) and value >= 0 and value == int(value)

    def tokens(item: Any) -> str | None:
        ok = isinstance(item, list) and item and all(token(t) for t in item)
        return " ".join(f"t{int(t)}" for t in item) if ok else None

    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, str) and item for item in value):
        return list(value)
    if all(token(item) for item in value):
        single = tokens(value)
        return [single] if single is not None else None
    texts = [tokens(item) for item in value]
    return None if any(text is None for text in texts) else [text for text in texts if text is not None]


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
            web.post("/openai/deployments/{deployment}/embeddings", self.deployment_embeddings),
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

    async def deployment_embeddings(self, request: web.Request) -> web.Response:
        """An embedding deployment (one whose name says ``embed``), whatever ``model`` the body names."""
        if "api-version" not in request.query:
            return self.error(404, "not_found", "Resource not found")
        deployment = request.match_info["deployment"]
        if not is_embedding_model(deployment):
            return self.error(404, "not_found", "The API deployment for this resource does not exist.")
        return self.embed(self.body(request), deployment)


class FakeHuggingFace(FakeOpenAI):
    """Hugging Face's router / TGI Messages API: OpenAI's wire, ``{"error": "..."}`` errors.

    Embeddings two ways: a TEI server's ``/v1/embeddings`` (OpenAI's wire; more than 32 texts is 413, TEI's
    default ``max_client_batch_size``), and the router's feature extraction,
    ``POST /hf-inference/models/{model}/pipeline/feature-extraction`` with ``{"inputs": [...]}``, answering
    a bare list of vectors (a model named ``...token...`` answers a vector per word, as a model without
    pooling does).
    """

    provider: ClassVar[str] = "huggingface"
    default_api_key: ClassVar[str | None] = "hf_" + "a1B2c3D4e5" * 3
    default_models: ClassVar[tuple[str, ...]] = (
        "meta-llama/Llama-3.1-8B-Instruct",
        "HuggingFaceTB/SmolLM3-3B",
    )
    owned_by: ClassVar[str] = "huggingface"
    max_embedding_inputs: ClassVar[int | None] = 32
    too_many_inputs_status: ClassVar[int] = 413

    def routes(self) -> list[web.RouteDef]:
        return [
            *super().routes(),
            web.post("/hf-inference/models/{model:.+}/pipeline/feature-extraction", self.feature_extraction),
        ]

    async def feature_extraction(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        body = self.body(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self.error(400, "invalid", "Input should be a valid string or list of strings")
        if not is_embedding_model(model) and "token" not in model:
            return self.error(404, "not_found", f"Model {model} does not exist")
        if self.max_embedding_inputs is not None and len(texts) > self.max_embedding_inputs:
            return self.error(413, "invalid", f"batch size {len(texts)} > maximum allowed batch size 32")
        if "token" in model:
            return self.json([[bag_of_words_vector(word) for word in text.split()] for text in texts])
        return self.json([bag_of_words_vector(text) for text in texts])

    def error(self, status: int, kind: str, message: str) -> web.Response:
        if kind == "auth":
            message = "Invalid credentials in Authorization header"
        return self.json({"error": message, "error_type": kind}, status)


if __name__ == "__main__":
    main(FakeOpenAI)
