"""A fake Ollama: ``POST /api/chat`` (JSON, or NDJSON when ``stream`` is true or absent), ``GET /api/tags``,
``POST /api/show``, ``POST /api/embed``.

``/api/embed`` (``input``: a string or strings; ``dimensions`` honoured) answers
:func:`~tests.fakes.base.bag_of_words_vector` of each text and counts its words as ``prompt_eval_count``;
like Ollama it embeds with any pulled model, and with any model named ``...embed...``.

No key by default (pass ``api_key=`` to require a bearer token, as a proxy in front of Ollama would).
Errors are ``{"error": "..."}``; an unknown model is 404 ``model "x" not found, try pulling it first``.
``/api/show`` lists a model's ``capabilities`` as Ollama 0.6.4+ does: ``completion``, and ``vision`` for
the models in ``VISION`` (``llava``, ``gemma3``...). A message's ``images`` (bare base64) are recorded in
``images``; sent to a model without vision, they are answered 400 (AI-Lab must refuse them first).

Tools are OpenAI's shape in ``tools``; the models in ``TOOLS`` call them (``/api/show`` lists ``tools``
among their capabilities), another answers 400 ``... does not support tools``. An assistant's
``tool_calls`` must carry their ``function.arguments`` as an object (Ollama's Go types refuse a string);
``tool`` messages may name their ``tool_name``. The fake's calls are ``message.tool_calls`` with no ids
(``done_reason`` stays ``stop``), streamed whole in one line before the last.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    is_embedding_model,
    main,
    quoting,
    words,
)
from tests.fakes.openai_server import last_user_text, read_tools

VISION = frozenset({"llava:latest", "llava:7b", "gemma3:4b", "llama3.2-vision:latest", "qwen2.5vl:3b"})
TOOLS = frozenset({"qwen2.5:0.5b", "llama3.1:latest", "llama3.2:latest", "qwen3:0.6b"})


def sniff(data: bytes) -> str:
    """The media type of image bytes (Ollama takes them without one), by their signature."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return "image/webp" if data[8:12] == b"WEBP" else "application/octet-stream"


def stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def tool_calls(calls: list[PlannedCall]) -> list[dict[str, Any]]:
    """The fake's calls as Ollama answers them: no ids, the arguments an object."""
    return [
        {"function": {"index": index, "name": call.name, "arguments": call.arguments}}
        for index, call in enumerate(calls)
    ]


def history_problem(messages: list[Any]) -> str | None:
    """What Ollama refuses in a conversation with tools: arguments that are no object."""
    for message in messages:
        for call in message.get("tool_calls") or []:
            if not isinstance((call.get("function") or {}).get("arguments"), dict):
                return (
                    "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls"
                    ".function.arguments of type api.ToolCallFunctionArguments"
                )
    return None


def trailing(messages: list[Any]) -> list[Any]:
    """The tool messages the conversation ends with."""
    found: list[Any] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        found.insert(0, message)
    return found


class FakeOllama(FakeServer):
    """Ollama's native API on 127.0.0.1."""

    provider: ClassVar[str] = "ollama"
    default_api_key: ClassVar[str | None] = None
    default_models: ClassVar[tuple[str, ...]] = ("llama3:latest", "qwen2.5:0.5b")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/chat", self.chat),
            web.get("/api/tags", self.tags),
            web.post("/api/show", self.show),
            web.post("/api/embed", self.embed),
        ]

    async def embed(self, request: web.Request) -> web.Response:
        body = self.body(request)
        if not isinstance(body, dict):
            return self.error(400, "invalid", "invalid request body")
        model = str(body.get("model", ""))
        if not self._known(model) and not is_embedding_model(model):
            return self.error(404, "not_found", f'model "{model}" not found, try pulling it first')
        value = body.get("input")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self.error(400, "invalid", "invalid input type")
        dims = int(body.get("dimensions") or EMBEDDING_DIMS)
        return self.json(
            {
                "model": model,
                "embeddings": [bag_of_words_vector(text, dims) for text in texts],
                "total_duration": 1_000_000,
                "load_duration": 10_000,
                "prompt_eval_count": sum(words(text) for text in texts),
            }
        )

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

    @staticmethod
    def _sees(model: str) -> bool:
        return model in VISION or f"{model}:latest" in VISION

    @staticmethod
    def _calls_tools(model: str) -> bool:
        return model in TOOLS or f"{model}:latest" in TOOLS

    async def show(self, request: web.Request) -> web.Response:
        body = self.body(request)
        model = str((body or {}).get("model") or (body or {}).get("name") or "")
        if not model or not self._known(model):
            return self.error(404, "not_found", f"model '{model}' not found")
        capabilities = ["completion", *(["vision"] if self._sees(model) else [])]
        capabilities += ["tools"] if self._calls_tools(model) else []
        return self.json(
            {
                "modelfile": f"FROM {model}",
                "parameters": "stop <|eot_id|>",
                "template": "{{ .Prompt }}",
                "details": {"format": "gguf", "family": "llama", "parameter_size": "8.0B"},
                "model_info": {"general.architecture": "llama"},
                "capabilities": capabilities,
                "modified_at": "2025-01-01T00:00:00Z",
            }
        )

    def read_images(self, model: str, messages: list[Any]) -> str | None:
        """Record the messages' images; what Ollama would refuse in them."""
        for message in messages:
            encoded = message.get("images") or []
            if encoded and not self._sees(model):
                return f"model {model!r} does not support image input"
            for text in encoded:
                data = decode_base64(text)
                if data is None:
                    return "illegal base64 data in images"
                self.images.append(ReceivedImage(sniff(data), data))
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = self.body(request)
        if not isinstance(body, dict):
            return self.error(400, "invalid", "invalid request body")
        model = str(body.get("model", ""))
        if not self._known(model):
            return self.error(404, "not_found", f'model "{model}" not found, try pulling it first')
        messages = body.get("messages") or []
        problem = self.read_images(model, messages)
        tools, _, _, tools_problem = read_tools({"tools": body.get("tools")})
        problem = problem or tools_problem or history_problem(messages)
        if problem:
            return self.error(400, "invalid", problem)
        if tools and not self._calls_tools(model):
            return self.error(400, "invalid", f"registry.ollama.ai/library/{model} does not support tools")
        if tools:
            self.tools_received.append(body["tools"])
        results = [str(m.get("content", "")) for m in trailing(messages)]
        calls = self.plan_calls(tools, "auto", None, last_user_text(messages), bool(results))
        texts = [str(m.get("content", "")) for m in messages]
        limit = (body.get("options") or {}).get("num_predict")
        answer_format = body.get("format")
        schema = {"type": "object"} if answer_format == "json" else answer_format
        if schema is not None and not isinstance(schema, dict):
            return self.error(400, "invalid", 'invalid format: expected "json" or a JSON schema')
        reply = quoting(results) if results and not calls else None
        gen = self.generation(model, texts, int(limit) if limit else None, schema, reply)
        if calls:
            gen.pieces = [piece for call in calls for piece in call.pieces()]
        if body.get("stream", True):
            return await self.stream_lines(request, gen, calls)
        message: dict[str, Any] = {"role": "assistant", "content": "" if calls else gen.text}
        if calls:
            message["tool_calls"] = tool_calls(calls)
        return self.json({**self.final(gen), "message": message})

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

    async def stream_lines(
        self, request: web.Request, gen: Generation, calls: list[PlannedCall]
    ) -> web.StreamResponse:
        head = []
        last = self.final(gen)  # counted before the calls' pieces are taken out of the text
        if calls:  # all the calls, whole, in one line
            message = {"role": "assistant", "content": "", "tool_calls": tool_calls(calls)}
            line = {"model": gen.model, "created_at": stamp(), "message": message, "done": False}
            head.append(orjson.dumps(line) + b"\n")
            gen.pieces = []

        def piece(text: str) -> bytes:
            line = {
                "model": gen.model,
                "created_at": stamp(),
                "message": {"role": "assistant", "content": text},
            }
            return orjson.dumps({**line, "done": False}) + b"\n"

        def tail() -> list[bytes]:
            return [orjson.dumps(last) + b"\n"]

        return await self.stream(request, "application/x-ndjson", head, piece, gen, tail)


if __name__ == "__main__":
    main(FakeOllama)
