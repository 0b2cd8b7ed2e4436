"""An OpenAI chat completions payload read into a backend-neutral :class:`ChatRequest`, for the backends
the gateway translates for (and for pipelines).

What it reads: the messages (text and ``image_url`` parts; an assistant's ``tool_calls``, its content
null; ``tool`` results with their ``tool_call_id``), the sampling settings, ``tools`` / ``tool_choice`` /
``parallel_tool_calls``, and ``response_format`` (``json_schema`` as :class:`ResponseSchema`,
``json_object`` as :attr:`ChatRequest.json_object`). ``seed``, the penalties and ``user`` go along in
``extra``: each backend sets what it has of them and refuses the others (Anthropic has no seed).

Nothing is dropped silently: a field this path does not know, with a value that would change the answer
(``logprobs: true``, ``n: 2``, ``functions``...), is a 400 naming it, since the backend would never see it.
Its neutral values (``null``, ``logprobs: false``, ``n: 1``) are taken. A backend that cannot do what was
asked (tools, a JSON mode, a tool choice it cannot force) refuses it itself, before anything is sent
(:func:`~ailab.providers.base.check_request`).
"""

from __future__ import annotations

from typing import Any

from ailab.providers.base import (
    ChatMessage,
    ChatRequest,
    ImagePart,
    ResponseSchema,
    Tool,
    ToolCall,
    ToolChoice,
    extra_sampling,
    uses_tools,
)
from ailab.services.gateway.images import image_of
from ailab.services.gateway.request import BadRequest

_PASSED_FIELDS = ("seed", "presence_penalty", "frequency_penalty", "user")
_READ_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls", "response_format",
        *_PASSED_FIELDS,
    }
)  # fmt: skip
# Values of fields this path does not read that ask for nothing: taken, as OpenAI's defaults.
_NEUTRAL: dict[str, tuple[Any, ...]] = {"n": (1,), "logprobs": (False,), "store": (False,)}
_NO_IMAGES: tuple[ImagePart, ...] = ()


def to_chat_request(payload: dict[str, Any], model: str, requester: str | None = None) -> ChatRequest:
    """A backend-neutral request from an OpenAI chat completions payload (translated path)."""
    _refuse_unread(payload)
    messages = [_message(item, index) for index, item in enumerate(payload["messages"])]
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise BadRequest("'max_tokens' must be an integer")
    if max_tokens is not None and max_tokens < 1:
        raise BadRequest("'max_tokens' must be at least 1")
    stop = payload.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("'stop' must be a string or an array of strings")
    tools = _tools(payload.get("tools"))
    parallel = payload.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise BadRequest("'parallel_tool_calls' must be a boolean")
    schema, json_object = _response_format(payload.get("response_format"))
    seed = payload.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("'seed' must be an integer")
    for name in ("presence_penalty", "frequency_penalty"):
        _number(payload, name, -2.0, 2.0)
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(payload, "temperature", 0.0, 2.0),
        top_p=_number(payload, "top_p", 0.0, 1.0),
        stop=stop,
        extra={k: payload[k] for k in _PASSED_FIELDS if payload.get(k) is not None},
        requester=requester,
        tools=tools,
        tool_choice=_tool_choice(payload.get("tool_choice"), tools),
        parallel_tool_calls=parallel,
        response_schema=schema,
        json_object=json_object,
    )


def refuse_for_pipeline(request: ChatRequest, model_id: str) -> None:
    """A pipeline's agents answer in text, with their own settings: tools, response formats, a seed or
    penalties are a 400 naming it."""
    if uses_tools(request):
        raise BadRequest(f"model '{model_id}' cannot call tools: a pipeline's agents answer in text")
    if request.response_schema is not None or request.json_object:
        raise BadRequest(f"model '{model_id}' answers in text: 'response_format' must be text")
    settings = extra_sampling(request)
    if settings:  # a turn of agents carries no sampling settings but its token limit and temperature
        raise BadRequest(f"model '{model_id}' takes no '{next(iter(settings))}': a pipeline sets its own")


def _refuse_unread(payload: dict[str, Any]) -> None:
    for name, value in payload.items():
        if name in _READ_FIELDS or value is None or value in _NEUTRAL.get(name, ()):
            continue
        raise BadRequest(
            f"'{name}' is not supported for model '{payload['model']}': its backend does not speak "
            "OpenAI's wire, and the gateway would have to drop it"
        )


def _message(item: Any, index: int) -> ChatMessage:
    if not isinstance(item, dict) or not isinstance(item.get("role"), str):
        raise BadRequest(f"messages[{index}] must be an object with a 'role'")
    role = "system" if item["role"] == "developer" else item["role"]
    if role not in ("system", "user", "assistant", "tool"):
        raise BadRequest(f"messages[{index}].role: '{role}' is not supported (system, user, assistant, tool)")
    text, images = _content_of(item.get("content"), index, role)
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"messages[{index}].tool_call_id is required in a tool message")
        return ChatMessage("tool", text, tool_call_id=call_id)
    calls = item.get("tool_calls")
    if calls is not None and role != "assistant":
        raise BadRequest(f"messages[{index}]: only an assistant's message carries tool_calls")
    return ChatMessage(role, text, images, tool_calls=_tool_calls(calls, index))


def _tool_calls(calls: Any, index: int) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise BadRequest(f"messages[{index}].tool_calls must be an array")
    found = []
    for number, call in enumerate(calls):
        where = f"messages[{index}].tool_calls[{number}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise BadRequest(f"'{where}' must be a function call: {{id, type: function, function}}")
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise BadRequest(f"'{where}' needs its 'id' and 'function.name'")
        if not isinstance(arguments, str):
            raise BadRequest(f"'{where}.function.arguments' must be a string (JSON text)")
        found.append(ToolCall(call_id, name, arguments))
    return tuple(found)


def _content_of(content: Any, index: int, role: str) -> tuple[str, tuple[ImagePart, ...]]:
    """A message's text and images: a string, or content parts (text, and images in a user's message)."""
    if isinstance(content, str):
        return content, _NO_IMAGES
    if content is None:
        return "", _NO_IMAGES
    if not isinstance(content, list):
        raise BadRequest(f"messages[{index}].content must be a string or an array of content parts")
    texts: list[str] = []
    images: list[ImagePart] = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url" and role == "user":
            images.append(image_of(part, f"messages[{index}].content[{number}]"))
        elif kind == "image_url":
            raise BadRequest(f"messages[{index}]: only a user's message can carry images")
        else:
            raise BadRequest(
                f"messages[{index}].content[{number}]: only text and image_url content parts are "
                "supported by this backend"
            )
    return "".join(texts), tuple(images)


def _tools(value: Any) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest("'tools' must be an array")
    tools = []
    for number, item in enumerate(value):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or item.get("type") != "function":
            raise BadRequest(
                f"'tools[{number}]': only function tools ({{type: function, function}}) are supported"
            )
        name, parameters = function.get("name"), function.get("parameters")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"'tools[{number}].function.name' is required")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest(f"'tools[{number}].function.parameters' must be a JSON schema (an object)")
        tools.append(
            Tool(
                name=name,
                description=str(function.get("description") or ""),
                parameters=parameters or {"type": "object", "properties": {}},
                strict=function.get("strict") is True,
            )
        )
    if len({tool.name for tool in tools}) < len(tools):
        raise BadRequest("'tools': two tools have the same name")
    return tuple(tools)


def _tool_choice(value: Any, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        if not tools:  # nothing to call: auto and none ask for nothing, required for the impossible
            if value == "required":
                raise BadRequest("'tool_choice' is 'required' but the request offers no tools")
            return None
        return ToolChoice(value)
    function = value.get("function") if isinstance(value, dict) and value.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise BadRequest(
            "'tool_choice' must be 'auto', 'none', 'required' or {type: function, function: {name}}"
        )
    if name not in {tool.name for tool in tools}:
        raise BadRequest(f"'tool_choice' names '{name}', which is not one of the request's tools")
    return ToolChoice("function", name)


def _response_format(value: Any) -> tuple[ResponseSchema | None, bool]:
    if value is None:
        return None, False
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None, False
    if kind == "json_object":
        return None, True
    spec = value.get("json_schema") if kind == "json_schema" and isinstance(value, dict) else None
    if not isinstance(spec, dict):
        raise BadRequest(
            "'response_format' must be {type: text}, {type: json_object} or {type: json_schema, json_schema}"
        )
    name, schema = spec.get("name"), spec.get("schema")
    if not isinstance(name, str) or not name:
        raise BadRequest("'response_format.json_schema.name' is required")
    if schema is None:  # OpenAI's schema is optional: then any JSON object
        return None, True
    if not isinstance(schema, dict):
        raise BadRequest("'response_format.json_schema.schema' must be a JSON schema (an object)")
    description = str(spec.get("description") or "")
    return ResponseSchema(name, schema, description, strict=spec.get("strict") is True), False


def _number(payload: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be a number between {low} and {high}")
    return float(value)
