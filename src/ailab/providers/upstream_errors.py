"""Upstream errors as AI-Lab's: each answer mapped to one :class:`~ailab.errors.ProviderError`.

::

    401 / 403                         -> ProviderAuthError    (the key was refused)
    404                               -> ModelNotFound
    400 / 413 / 422                   -> ProviderRejected     (the request itself: too long, invalid)
    429                               -> ProviderRateLimited  (retry_after from the Retry-After header)
    5xx, connection refused, DNS, EOF -> ProviderUnavailable
    no answer in time                 -> ProviderTimeout
    any other 4xx                     -> ProviderError        (the upstream's message)

Only the upstream's own error message is passed on (never its headers or its body as it came), with
secrets scrubbed from it: the key we sent (upstreams quote the key they refused) and anything shaped
like a provider key (:func:`scrub`).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from ailab.errors import (
    ModelNotFound,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

MAX_ERROR_TEXT = 500

# A provider-specific reading of an error answer (status, body) that the generic mapping would get wrong,
# e.g. Gemini answering 400 for an invalid key. None: use the generic mapping.
ErrorHook = Callable[[int, bytes, str], ProviderError | None]


def error_message(body: bytes) -> str:
    """The upstream's own message from the usual JSON error shapes, else a short excerpt of the text.

    Shapes: ``{"error": {"message"}}`` (OpenAI, Anthropic, Gemini, Azure), ``{"error": "..."}`` (Ollama,
    Hugging Face), ``{"message": "..."}`` (Cohere), ``{"detail": ...}``.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:MAX_ERROR_TEXT] or "no detail given"
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code")
        elif isinstance(error, str):
            message = error
        message = message or data.get("message") or data.get("detail")
    if message is None:
        message = body.decode("utf-8", errors="replace")
    return str(message).strip()[:MAX_ERROR_TEXT] or "no detail given"


def load_event(provider: str, text: str | bytes) -> dict[str, Any]:
    """One streamed JSON object (an SSE ``data:`` or an NDJSON line); ProviderUnavailable if garbled."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProviderUnavailable(f"{provider} sent an invalid stream event") from exc
    return data if isinstance(data, dict) else {}


# Provider key shapes (OpenAI, Anthropic, Hugging Face, Google, AI-Lab's own tokens...), to mask one an
# upstream quotes in another form than we sent it (trimmed, or a key of another request).
_KEY_SHAPES = re.compile(
    r"\b(?:sk|sk-ant|sk-proj|sk-svcacct|hf|AIza|ailab|gsk|xai|pplx)[-_][A-Za-z0-9_\-]{12,}"
)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` and anything shaped like a provider key masked (upstreams echo keys)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return _KEY_SHAPES.sub("***", text)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(provider: str, status: int, message: str, retry_after: str | None = None) -> ProviderError:
    """The :class:`ProviderError` for an upstream's non-2xx answer (see the table in the module doc)."""
    if status in (401, 403):
        env = f"AILAB_{provider.upper().replace('-', '_')}_API_KEY"
        return ProviderAuthError(
            f"{provider} refused the credentials ({status}: {message}); "
            f"set a valid key with `ai-lab keys set {provider}` or {env}"
        )
    if status == 404:
        return ModelNotFound(f"{provider}: not found ({message})")
    if status in (400, 413, 422):
        return ProviderRejected(f"{provider} rejected the request ({status}): {message}")
    if status == 429:
        return ProviderRateLimited(
            f"{provider} is rate limiting requests: {message}", retry_after_seconds(retry_after)
        )
    if status >= 500:
        return ProviderUnavailable(f"{provider} upstream error {status}: {message}")
    return ProviderError(f"{provider} rejected the request ({status}): {message}")
