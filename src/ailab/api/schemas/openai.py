"""``/v1``: OpenAI's shapes, as the official SDKs read them.

The requests are :class:`~ailab.services.gateway.request.ChatCompletionRequest` and
:class:`~ailab.services.gateway.embeddings.EmbeddingsRequest` (validated by the gateway itself, on the
fast lane too). Answers passed through from a backend that speaks OpenAI's wire keep every
field it sent, so these models allow extra fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ailab.services.gateway.embeddings import EmbeddingsRequest
from ailab.services.gateway.request import ChatCompletionRequest

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "EmbeddingList",
    "EmbeddingsRequest",
    "ModelList",
    "OpenAIProblem",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelOut(_Open):
    id: str  # provider/model, or pipeline/<name>
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"]
    data: list[ModelOut]


class AssistantMessage(_Open):
    role: str
    content: str | None = None


class Choice(_Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None = None


class CompletionUsage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Open):
    """The answer of a non-streamed request (a stream sends ``chat.completion.chunk`` events instead)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int  # of the input it embeds
    embedding: list[float] | str  # floats, or with encoding_format base64 their little-endian float32 bytes


class EmbeddingUsage(_Open):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Open):
    """The answer of ``POST /v1/embeddings``: one embedding per input."""

    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None = None  # always in AI-Lab's answers; passed through as the upstream sent it


class OpenAIErrorBody(_Open):
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    details: Any = None


class OpenAIProblem(_Open):
    """An error under ``/v1``, in OpenAI's shape (SDKs raise their usual exceptions)."""

    error: OpenAIErrorBody
    request_id: str | None = None
