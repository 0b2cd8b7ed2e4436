"""Decoders of what streaming upstreams send: Server-Sent Events and newline-delimited JSON."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``event:`` name ("message" when absent) and joined ``data:`` lines."""

    event: str
    data: str


class SSEDecoder:
    """Incremental ``text/event-stream`` parser: feed it bytes as they come, get whole events back.

    Follows the WHATWG rules the upstreams rely on: lines end with LF or CRLF, a blank line ends an event,
    ``:`` starts a comment, several ``data:`` lines are joined with newlines.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        events: list[SSEEvent] = []
        for raw in lines:
            self._line(raw.rstrip(b"\r").decode("utf-8", errors="replace"), events)
        return events

    def flush(self) -> list[SSEEvent]:
        """At the end of the stream: the last event, even without its closing blank line."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r").decode("utf-8", errors="replace"), events)
            self._buffer = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


class LineDecoder:
    """Incremental newline-delimited JSON splitter (Ollama's streaming format): non-empty lines out."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete lines in what has arrived so far."""
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        return [line for line in (raw.strip() for raw in lines) if line]

    def flush(self) -> list[bytes]:
        """The last line when the stream ended without a newline."""
        rest, self._buffer = self._buffer.strip(), b""
        return [rest] if rest else []
