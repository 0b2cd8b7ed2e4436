"""The HTTP/1.1 protocol ``ai-lab serve`` runs: uvicorn's httptools protocol, a whole response in one write.

uvicorn writes a response's status line and headers (at ``http.response.start``) and its body (at the
``http.response.body`` that follows) with two ``transport.write`` calls: two ``send`` syscalls and, as
its sockets set ``TCP_NODELAY``, two TCP segments the client must take in one by one (on loopback about
5 us of CPU each, measured; a gateway request makes three writes in all, its upstream call included).
A head that gives a ``Content-Length`` announces a whole body, which an ASGI app sends right after it
(Starlette's ``Response`` does, in the same step), so :class:`HeadWithBody` holds such a head and sends
it with the first write after it. A stream's head (no length: chunked) goes at once, so a client sees
the status before the first event. A held head never waits past its response's end (a ``HEAD`` request's
answer has no body: ``on_response_complete`` sends it), nor past a close.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_STATUS_LINE = b"HTTP/1.1 "
_END_OF_HEAD = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length: "  # uvicorn writes header names in lower case


def whole_body_head(data: bytes) -> bool:
    """Whether ``data`` is a response's head alone (no body yet) announcing a body of a known length."""
    return data.startswith(_STATUS_LINE) and data.endswith(_END_OF_HEAD) and _LENGTH in data


class HeadWithBody(asyncio.Transport):
    """A connection's transport that sends a whole-body response's head with the first write after it
    (see the module docstring); everything else goes to ``transport`` as it comes."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``: with a held head before it, or held itself if it is such a head."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif isinstance(data, bytes) and whole_body_head(data):
            self._held = data
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        """Send each piece, a held head first."""
        self.flush()
        self._transport.writelines(list_of_data)

    def flush(self) -> None:
        """Send a held head now."""
        held, self._held = self._held, None
        if held is not None:
            self._transport.write(held)

    def close(self) -> None:
        """Close after sending what is held (as a transport sends its buffer before closing)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Close at once; what is held is dropped, as the transport's buffer is."""
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (len(self._held) if self._held else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        """Send a held head, then end the sending side."""
        self.flush()
        self._transport.write_eof()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose whole responses go out in one write (the module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Serve the connection through :class:`HeadWithBody`."""
        super().connection_made(HeadWithBody(transport))

    def on_response_complete(self) -> None:
        """A response ended: what is held of it goes out before the next one starts."""
        transport = self.transport
        if isinstance(transport, HeadWithBody):
            transport.flush()
        super().on_response_complete()
