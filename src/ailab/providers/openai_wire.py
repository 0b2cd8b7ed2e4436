"""OpenAI's chat completions wire format, as pure functions (no HTTP), shared by every backend that speaks it.

OpenAI itself, Azure OpenAI, Hugging Face's router / TGI Messages API and OpenAI-compatible servers (vLLM,
llama.cpp server, LM Studio) all take the same request body and answer the same JSON, or the same stream
of ``data: {chat.completion.chunk}`` events ending with ``data: [DONE]``. With
``stream_options.include_usage`` the stream's last chunk (with empty ``choices``) carries the usage.
Structured output is the strict ``json_schema`` response format. A message's images are ``image_url``
content parts holding a ``data:`` URL, beside a text part; a message without images keeps its plain
string content, so text-only requests are what they always were.

Tools are ``{"type": "function", "function": {name, description, parameters}}``; the tool choice is
``"auto"`` / ``"none"`` / ``"required"`` or ``{"type": "function", "function": {"name"}}``. An assistant
message carries its ``tool_calls`` (``{id, type: function, function: {name, arguments}}``, the arguments
as JSON text), a ``tool`` message its ``tool_call_id``. A stream sends each call in pieces under
``delta.tool_calls``: the first with its ``index``, ``id`` and name, the next ones with the same index and
pieces of the arguments.

Embeddings are ``POST /embeddings`` with ``{"model", "input": [...], "encoding_format": "float"}``; the
answer's ``data`` items carry their ``index``, which (not their place in the list) says which input
each vector belongs to.
"""

from __future__ import annotations

import base64
from typing import Any

from ailab.errors import ProviderUnavailable
from ailab.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    Embeddings,
    ImagePart,
    ModelInfo,
    ResponseSchema,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    sampling_fields,
    token_count,
)
from ailab.providers.embeddings import vector
from ailab.providers.tools import arguments_text, choice_of, new_call_id

DONE = "[DONE]"


def build_chat_body(
    request: ChatRequest, *, stream: bool, max_tokens_field: str = "max_tokens"
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``.

    Extra OpenAI fields (``seed``, ``response_format``, ...) pass through; the explicit ones win.
    ``max_tokens_field`` is ``max_completion_tokens`` for OpenAI itself, whose newer models refuse
    ``max_tokens``.
    """
    body: dict[str, Any] = dict(request.extra)
    body["model"] = request.model
    body["messages"] = [message_json(m) for m in request.messages]
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    body.update(sampling_fields(request, max_tokens=max_tokens_field))
    if request.response_schema is not None:
        body["response_format"] = response_format(request.response_schema)
    elif request.json_object:
        body["response_format"] = {"type": "json_object"}
    body.update(tool_fields(request))
    return body


def tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` of a request, as OpenAI takes them (Ollama
    takes its ``tools`` in the same shape)."""
    fields: dict[str, Any] = {}
    if request.tools:
        fields["tools"] = [tool_json(tool) for tool in request.tools]
    choice = choice_of(request)
    if choice is not None:
        fields["tool_choice"] = tool_choice_json(choice)
    if request.parallel_tool_calls is not None and request.tools:
        fields["parallel_tool_calls"] = request.parallel_tool_calls
    return fields


def tool_json(tool: Tool) -> dict[str, Any]:
    """One tool: ``{"type": "function", "function": {...}}``."""
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def tool_choice_json(choice: ToolChoice) -> str | dict[str, Any]:
    """``"auto"``, ``"none"``, ``"required"``, or the named function."""
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    """A call an assistant message carries."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def data_url(image: ImagePart) -> str:
    """``data:<media type>;base64,<data>``: an image inline, as OpenAI's ``image_url`` takes it."""
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def content_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A message with images as content parts: its text (when there is any), then one ``image_url`` part
    per image. Cohere's v2 chat takes the same parts."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    parts += [{"type": "image_url", "image_url": {"url": data_url(image)}} for image in message.images]
    return parts


def message_json(message: ChatMessage) -> dict[str, Any]:
    """One message of the request: plain string content, or content parts when it shows images; an
    assistant's tool calls (its content null when it has none), a tool result's call id."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    content: str | list[dict[str, Any]] | None = content_parts(message) if message.images else message.content
    if message.tool_calls:
        return {
            "role": message.role,
            "content": content or None,
            "tool_calls": [tool_call_json(call) for call in message.tool_calls],
        }
    return {"role": message.role, "content": content}


def response_format(schema: ResponseSchema) -> dict[str, Any]:
    """OpenAI's strict ``json_schema`` response format for ``schema``."""
    spec: dict[str, Any] = {"name": schema.name, "schema": dict(schema.schema), "strict": schema.strict}
    if schema.description:
        spec["description"] = schema.description
    return {"type": "json_schema", "json_schema": spec}


def parse_usage(data: Any) -> Usage | None:
    """``usage`` of an answer or chunk, or None when absent."""
    if not isinstance(data, dict):
        return None
    return Usage(
        prompt_tokens=token_count(data.get("prompt_tokens")),
        completion_tokens=token_count(data.get("completion_tokens")),
    )


def parse_tool_calls(items: Any) -> tuple[ToolCall, ...]:
    """The ``tool_calls`` of an answer's message (a server that sends the arguments as an object, or no
    id, is put right)."""
    calls = []
    for item in items if isinstance(items, list) else []:
        function = item.get("function") if isinstance(item, dict) else None
        if isinstance(function, dict) and function.get("name"):
            call_id = str(item.get("id") or new_call_id())
            calls.append(ToolCall(call_id, str(function["name"]), arguments_text(function.get("arguments"))))
    return tuple(calls)


def parse_chat_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A ``chat.completion`` object as a :class:`ChatResult`."""
    choices = data.get("choices") or []
    first = choices[0] if choices else {}
    message = first.get("message") or {}
    return ChatResult(
        content=message.get("content") or "",
        model=data.get("model") or requested_model,
        usage=parse_usage(data.get("usage")),
        finish_reason=first.get("finish_reason"),
        tool_calls=parse_tool_calls(message.get("tool_calls")),
    )


def parse_tool_call_deltas(items: Any) -> tuple[ToolCallDelta, ...]:
    """The pieces of tool calls in a chunk's ``delta.tool_calls``."""
    deltas = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("index"), int):
            continue
        function = item.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # a piece is text; a server that sends an object sends it whole
            arguments = "" if arguments is None else arguments_text(arguments)
        name = function.get("name")
        deltas.append(ToolCallDelta(item["index"], item.get("id") or None, name or None, arguments))
    return tuple(deltas)


class StreamState:
    """Turns ``chat.completion.chunk`` objects into :class:`ChatChunk` s.

    Text deltas come out as they arrive; the finish reason and the usage (which comes after it, in a
    chunk of its own) are held back and come out together in :meth:`final`. The stream's end is the
    ``[DONE]`` line, not an event, so ``done`` stays False.
    """

    def __init__(self, provider: str = "openai") -> None:
        self.provider = provider
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text (and tool call pieces) in ``data``, or None when it only carried role, finish reason
        or usage.

        Raises on an ``{"error": ...}`` event (some servers send one mid-stream).
        """
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise ProviderUnavailable(f"{self.provider} failed mid-stream: {message or 'unknown error'}")
        usage = parse_usage(data.get("usage"))
        if usage is not None:
            self.usage = usage
        text = ""
        calls: tuple[ToolCallDelta, ...] = ()
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            calls += parse_tool_call_deltas(delta.get("tool_calls"))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return ChatChunk(delta=text, tool_calls=calls) if text or calls else None

    def final(self) -> ChatChunk:
        """The last chunk: finish reason and usage."""
        return ChatChunk(finish_reason=self.finish_reason or "stop", usage=self.usage)


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    """``GET /models`` (``{"object": "list", "data": [...]}``) as :class:`ModelInfo` s."""
    models = []
    for item in data.get("data") or []:
        if isinstance(item, dict) and item.get("id"):
            context = item.get("context_length") or item.get("max_model_len")
            models.append(
                ModelInfo(
                    id=str(item["id"]),
                    owned_by=item.get("owned_by"),
                    context_window=int(context) if isinstance(context, int) else None,
                )
            )
    return models


def build_embeddings_body(model: str, inputs: list[str], dimensions: int | None = None) -> dict[str, Any]:
    """The JSON body of ``POST /embeddings``: float vectors, shortened to ``dimensions`` when given."""
    body: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def parse_embeddings(data: Any, requested_model: str, provider: str = "openai") -> Embeddings:
    """An embeddings ``list`` answer as :class:`Embeddings`, the vectors in the inputs' order."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ProviderUnavailable(f"{provider} answered with an unexpected embeddings shape")
    ordered = sorted(items, key=lambda item: item.get("index") if isinstance(item.get("index"), int) else 0)
    usage = data.get("usage")
    return Embeddings(
        vectors=[vector(provider, item.get("embedding")) for item in ordered],
        model=str(data.get("model") or requested_model),
        usage=Usage(token_count(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None,
    )
