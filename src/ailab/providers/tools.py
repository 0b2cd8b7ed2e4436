"""What every backend's translation of tools shares: arguments as JSON text or object, generated call
ids, and the checks of a tool choice.

OpenAI carries a call's arguments as JSON text; Anthropic, Gemini and Ollama as an object. Text from a
client that is not a JSON object cannot become one, so it is refused (400), not guessed at. Gemini and
Ollama give their calls no ids: one is made up per call (``call_`` and 24 hex digits, as unique as
OpenAI's), and the result that comes back with it is paired with its call by the tool's name, which the
assistant message of the call says (:func:`~ailab.providers.base.tool_names`).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ailab.errors import InvalidInput
from ailab.providers.base import ChatRequest, ToolCall, ToolChoice


def new_call_id() -> str:
    """A fresh call id for a backend that gives none."""
    return f"call_{uuid.uuid4().hex[:24]}"


def arguments_text(value: Any) -> str:
    """A call's arguments as JSON text: an object is serialised, text is kept, nothing is ``{}``."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value or "{}"
    return orjson.dumps(value).decode()


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the object a backend's wire wants; InvalidInput when they are not one."""
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"the arguments of tool call '{call.id}' ({call.name}) must be a JSON object, as text"
        )
    return value


def choice_of(request: ChatRequest) -> ToolChoice | None:
    """The request's tool choice, checked: a named tool must be one of its tools."""
    choice = request.tool_choice
    named = choice is not None and choice.mode == "function"
    if named and choice is not None and choice.name not in {tool.name for tool in request.tools}:
        raise InvalidInput(f"tool_choice names '{choice.name}', which is not one of the request's tools")
    return choice


def refuse(provider: str, what: str) -> InvalidInput:
    """The error for what ``provider``'s wire cannot do with tools."""
    return InvalidInput(f"{provider} cannot {what}")


class CallIndexes:
    """Gives the tool calls of one streamed answer their OpenAI index (0, 1, ...) from a backend's own
    key for them (a content block's index, an event's index), in the order they start."""

    def __init__(self) -> None:
        self._indexes: dict[Any, int] = {}

    def start(self, key: Any) -> int:
        """The index of a call that starts now."""
        index = self._indexes[key] = len(self._indexes)
        return index

    def get(self, key: Any) -> int | None:
        """The index of the call ``key`` started, or None."""
        return self._indexes.get(key)

    def __len__(self) -> int:
        return len(self._indexes)
