"""A fake Cohere API: v2 ``POST /v2/chat`` (JSON or SSE ``content-delta``...``message-end``),
``POST /v2/embed`` and ``GET /v1/models``.

``/v2/embed`` takes at most 96 ``texts``, needs an ``input_type`` and answers
:func:`~tests.fakes.base.bag_of_words_vector` of each under ``embeddings.float`` (``output_dimension``
honoured), billing the words as input tokens.

Errors are ``{"id", "message"}`` as Cohere's are. Content may be a string or OpenAI-style parts
(``text``, ``image_url`` with a data URL; the images are recorded in ``images``).

Tools are OpenAI's shape; ``tool_choice`` is ``REQUIRED`` or ``NONE`` (no other value, and only with
tools). Assistant messages carry ``tool_calls`` (arguments as JSON text) and a ``tool_plan``; ``tool``
messages answer them by ``tool_call_id``. The fake's calls come with a ``tool_plan`` and
``finish_reason: TOOL_CALL``; streamed as ``tool-plan-delta`` events, then per call ``tool-call-start``
(id, name), ``tool-call-delta`` pieces of the arguments and ``tool-call-end``.
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
    bag_of_words_vector,
    is_embedding_model,
    main,
    quoting,
    words,
)
from tests.fakes.openai_server import (
    last_user_text,
    read_messages,
    read_tools,
    tool_history_problem,
    trailing_results,
)

TOOL_PLAN = "I will use a tool for this."
_CHOICES = {None: "auto", "REQUIRED": "required", "NONE": "none"}

_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_call": "TOOL_CALL"}


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
    max_embedding_inputs: ClassVar[int | None] = 96

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/chat", self.chat),
            web.post("/v2/embed", self.embed),
            web.get("/v1/models", self.list_models),
        ]

    async def embed(self, request: web.Request) -> web.Response:
        body = self.body(request)
        if not isinstance(body, dict):
            return self.error(400, "invalid", "invalid request: body must be a JSON object")
        model = str(body.get("model", ""))
        if not is_embedding_model(model):
            return self.error(
                404, "not_found", f"model '{model}' not found, make sure the correct model ID was used"
            )
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self.error(400, "invalid", "invalid request: texts must be a non-empty list of strings")
        if self.max_embedding_inputs is not None and len(texts) > self.max_embedding_inputs:
            return self.error(
                400,
                "invalid",
                f"invalid request: total number of texts must be at most "
                f"{self.max_embedding_inputs} - received {len(texts)}",
            )
        if not body.get("input_type"):
            return self.error(
                400, "invalid", "invalid request: input_type is required for embed models v3 and higher"
            )
        if "float" not in (body.get("embedding_types") or ["float"]):
            return self.error(400, "invalid", "invalid request: the fake only makes float embeddings")
        dims = int(body.get("output_dimension") or EMBEDDING_DIMS)
        tokens = sum(words(text) for text in texts)
        return self.json(
            {
                "id": self.next_id("embed-"),
                "embeddings": {"float": [bag_of_words_vector(text, dims) for text in texts]},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
                "response_type": "embeddings_by_type",
            }
        )

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
        texts, images, problem = read_messages(body["messages"])
        tools, _, _, tools_problem = read_tools({"tools": body.get("tools")})
        problem = problem or tools_problem or tool_history_problem(body["messages"])
        if problem:
            return self.error(400, "invalid", f"invalid request: {problem}")
        choice = body.get("tool_choice")
        if choice not in _CHOICES or (choice is not None and not tools):
            return self.error(
                400, "invalid", "invalid request: tool_choice must be REQUIRED or NONE, with tools"
            )
        if tools:
            self.tools_received.append(body["tools"])
        results = trailing_results(body["messages"])
        last_user = last_user_text(body["messages"])
        calls = self.plan_calls(tools, _CHOICES[choice], None, last_user, bool(results), "tool_")
        self.images += images
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
        reply = quoting(results) if results and not calls else None
        gen = self.generation(model, texts, int(limit) if limit else None, schema, reply)
        if calls:
            gen.pieces = [piece for call in calls for piece in call.pieces()]
            gen.finish_reason = "tool_call"
        if body.get("stream"):
            return await self.stream_events(request, gen, calls)
        message: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": gen.text}]}
        if calls:
            message = {
                "role": "assistant",
                "tool_plan": TOOL_PLAN,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.json}}
                    for c in calls
                ],
            }
        return self.json(
            {
                "id": self.next_id("chat-"),
                "finish_reason": _FINISH[gen.finish_reason],
                "message": message,
                "usage": usage(gen),
            }
        )

    async def stream_events(
        self, request: web.Request, gen: Generation, calls: list[PlannedCall]
    ) -> web.StreamResponse:
        message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
        counted = usage(gen)  # the calls' pieces count, streamed below instead of text
        head = [sse("message-start", {"id": self.next_id("chat-"), "delta": {"message": message}})]
        if calls:
            gen.pieces = []
            for word in TOOL_PLAN.split(" "):
                head.append(sse("tool-plan-delta", {"delta": {"message": {"tool_plan": word + " "}}}))
            for index, call in enumerate(calls):
                start = {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
                head.append(
                    sse("tool-call-start", {"index": index, "delta": {"message": {"tool_calls": start}}})
                )
                for text in call.pieces():
                    more = {"tool_calls": {"function": {"arguments": text}}}
                    head.append(sse("tool-call-delta", {"index": index, "delta": {"message": more}}))
                head.append(sse("tool-call-end", {"index": index}))
        else:
            text = {"message": {"content": {"type": "text", "text": ""}}}
            head.append(sse("content-start", {"index": 0, "delta": text}))

        def piece(text: str) -> bytes:
            return sse("content-delta", {"index": 0, "delta": {"message": {"content": {"text": text}}}})

        def tail() -> list[bytes]:
            end = {"delta": {"finish_reason": _FINISH[gen.finish_reason], "usage": counted}}
            return [*([] if calls else [sse("content-end", {"index": 0})]), sse("message-end", end)]

        return await self.stream(request, "text/event-stream", head, piece, gen, tail)


if __name__ == "__main__":
    main(FakeCohere)
