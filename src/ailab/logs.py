"""Logging: plain text or JSON lines, one access line per request.

Request bodies are never logged. Values that look like credentials (bearer tokens, provider keys, Fernet
keys) are masked by :class:`RedactingFilter` before any handler sees a record, as a last line of defence
behind code that never logs them in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

ACCESS_LOGGER = "ailab.access"
_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(sk-(?:ant-)?[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|AIza[A-Za-z0-9_-]{8,}|ailab_[A-Za-z0-9_-]{8,})"
)
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    """Mask substrings of ``text`` that look like credentials."""
    return _SECRET_PATTERNS.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """Masks credential-looking substrings in the message and the traceback of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if record.exc_text:
            payload["traceback"] = record.exc_text
        elif record.exc_info:
            payload["traceback"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(payload, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines; access records carry their fields in the message already."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.converter = time.gmtime


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Route every logger (ours, uvicorn's, SQLAlchemy's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ours carries the request id
