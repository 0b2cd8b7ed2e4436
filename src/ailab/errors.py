"""The exception tree of AI-Lab's domain layer.

Services raise these; the API maps them to HTTP answers in one place (``api/errors.py``) and the CLI to
messages and exit codes, so neither layer needs to know the other::

    AILabError                      500 unless a subclass says otherwise
    ├── NotFound                    404  unknown id, or an object of another user
    ├── Conflict                    409  the object exists already
    ├── InvalidInput                422  well-formed but unacceptable input
    ├── TooLarge                    413  an upload past its byte limit
    ├── UnsupportedType             415  a file whose bytes are not accepted (or not what its name says)
    ├── AuthError                   401  missing, invalid, expired or revoked credentials
    │   └── TooManyAttempts         429  login throttled (carries retry_after seconds)
    ├── TooManyRunning              429  a user's limit of concurrent expensive work (carries retry_after)
    ├── QuotaExceeded               429  a budget of the user or API token is spent (carries retry_after)
    ├── Forbidden                   403  authenticated but not allowed (admin-only)
    ├── DatabaseUnavailable         503  the database does not answer
    ├── SharedStateUnavailable      503  Redis (AILAB_REDIS_URL) does not answer
    └── ProviderError               502  a model backend failed
        ├── ProviderAuthError       502  the backend refused AI-Lab's credentials (not the caller's)
        ├── ProviderRejected        400  the backend refused the request itself (too long, invalid)
        ├── ModelNotFound           404  the backend does not know the model
        ├── ProviderRateLimited     429  the backend throttled us (carries retry_after)
        ├── ProviderUnavailable     502  unreachable / connection refused
        │   └── ModelBusy           503  a local model's queue is full (carries retry_after)
        └── ProviderTimeout         504  no answer in time
"""

from __future__ import annotations


class AILabError(Exception):
    """Base of every domain error; ``status`` is the HTTP status it maps to."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AILabError):
    status = 404
    code = "not_found"


class Conflict(AILabError):
    status = 409
    code = "conflict"


class InvalidInput(AILabError):
    status = 422
    code = "invalid_input"


class TooLarge(AILabError):
    status = 413
    code = "too_large"


class UnsupportedType(AILabError):
    status = 415
    code = "unsupported_type"


class AuthError(AILabError):
    status = 401
    code = "invalid_credentials"


class TooManyAttempts(AuthError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRunning(AILabError):
    status = 429
    code = "too_many_running"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(AILabError):
    """A budget an admin set (requests or tokens per hour, day or month) is spent until ``retry_after``.

    ``insufficient_quota`` is OpenAI's code for the same refusal, so SDKs and clients recognise it.
    """

    status = 429
    code = "insufficient_quota"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(AILabError):
    status = 403
    code = "forbidden"


class DatabaseUnavailable(AILabError):
    status = 503
    code = "database_unavailable"


class SharedStateUnavailable(AILabError):
    status = 503
    code = "shared_state_unavailable"


class ProviderError(AILabError):
    status = 502
    code = "upstream_error"


class ProviderAuthError(ProviderError):
    # 502, not 401: the caller's own credentials are fine; the key AI-Lab holds for the backend is not.
    status = 502
    code = "invalid_api_key"


class ProviderRejected(ProviderError):
    status = 400
    code = "upstream_rejected"


class ModelNotFound(ProviderError):
    status = 404
    code = "model_not_found"


class ProviderRateLimited(ProviderError):
    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    status = 502
    code = "upstream_unavailable"


class ModelBusy(ProviderUnavailable):
    """The model cannot take the request in time: its queue is full, or the wait was too long."""

    status = 503
    code = "model_busy"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    status = 504
    code = "upstream_timeout"
