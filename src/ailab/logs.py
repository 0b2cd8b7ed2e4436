"""Logging: plain text or JSON lines, one access line per request.

Request bodies are never logged. Values that look like credentials (bearer tokens, provider keys, Fernet
keys) are masked by :class:`RedactingFilter` before any handler sees a record, as a last line of defence
behind code that never logs them in the first place.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import IO, Any, NamedTuple

import orjson

ACCESS_LOGGER = "ailab.access"
_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(sk-(?:ant-)?[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|AIza[A-Za-z0-9_-]{8,}|ailab_[A-Za-z0-9_-]{8,})"
)
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def looks_secret(text: str) -> bool:
    """Whether ``text`` holds something :func:`redact` would mask."""
    return _SECRET_PATTERNS.search(text) is not None


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
    """One JSON object per line: time (UTC), level, logger, message, extra fields, traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.converter = time.gmtime  # the time ends in Z, whatever the machine's zone

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


_MILLIS = [f"{ms:03d}" for ms in range(1000)]  # a line's milliseconds, formatted once, not per line


class _Line(NamedTuple):
    at: float
    request_id: str
    method: str
    route: str
    status: int
    duration_s: float

    @property
    def message(self) -> str:
        return f"{self.request_id} {self.method} {self.route} {self.status} {self.duration_s * 1000:.1f}ms"


class AccessLog:
    """The access log: one line per request, in the format of the other logs.

    Until :func:`configure_logging` gives it a stream, each line is a record of the ``ailab.access``
    logger like any other. Once it has one, lines are formatted here and written together, once per
    turn of the event loop: under load a server answers many requests per turn, and a record through
    ``logging`` (record, filter, format, one write each) cost 5-6% of the gateway's CPU per request.
    Every field is the server's own (a client's ``X-Request-Id`` that looks like a credential is
    replaced before it gets here), so the redacting filter has nothing to mask in them.
    """

    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self._stream: IO[str] | None = None
        self._json = False
        self._pending: list[_Line] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on
        self._second = -1
        self._stamp = ""

    def write_to(self, stream: IO[str] | None, fmt: str = "text") -> None:
        """Write lines to ``stream`` in ``fmt`` (``text`` or ``json``); None: through ``logging``."""
        self.flush()
        self._stream = stream
        self._json = fmt == "json"
        self._second = -1  # the cached time stamp is of the other format

    def line(self, request_id: str, method: str, route: str, status: int, duration_s: float) -> None:
        """Log one finished request (nothing when the access logger is off)."""
        if not self.logger.isEnabledFor(logging.INFO) or self.logger.disabled:
            return
        if self._stream is None:
            self.logger.info(
                "%s %s %s %d %.1fms",
                request_id,
                method,
                route,
                status,
                duration_s * 1000,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration_s * 1000, 3),
                },
            )
            return
        self._pending.append(_Line(time.time(), request_id, method, route, status, duration_s))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: at once
            self.flush()
            return
        if self._flush_on is not loop:  # (a flush scheduled on a loop that closed since never runs)
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the lines waiting for the end of this turn of the loop."""
        pending, self._pending = self._pending, []
        self._flush_on = None
        if not pending or self._stream is None:
            return
        lines = [self._json_line(p) if self._json else self._text_line(p) for p in pending]
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed (shutdown): nowhere to log to
            pass

    def _time(self, at: float, sep: str, frac: str) -> str:
        second = int(at)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", time.gmtime(at))
        return f"{self._stamp}{frac}{_MILLIS[int((at - second) * 1000)]}"

    def _text_line(self, line: _Line) -> str:
        return f"{self._time(line.at, ' ', ',')} INFO    {ACCESS_LOGGER}: {line.message}\n"

    def _json_line(self, line: _Line) -> str:
        payload = {
            "time": self._time(line.at, "T", ".") + "Z",
            "level": "info",
            "logger": ACCESS_LOGGER,
            "message": line.message,
            "request_id": line.request_id,
            "method": line.method,
            "route": line.route,
            "status": line.status,
            "duration_ms": round(line.duration_s * 1000, 3),
        }
        return orjson.dumps(payload).decode() + "\n"


ACCESS_LOG = AccessLog()


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
    ACCESS_LOG.write_to(sys.stderr, fmt)
