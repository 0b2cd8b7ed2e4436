"""Reading a ``multipart/form-data`` upload as it arrives, into an :class:`Incoming` file.

Starlette's form parsing spools the whole body before a route sees it; an upload here is counted and
written while it streams, so one past the limit is refused (413) after reading no more than the limit.
Only the part named ``file`` is kept; other fields are read and dropped (at most
:data:`MAX_OTHER_BYTES` of them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ailab.errors import InvalidInput, TooLarge, UnsupportedType
from ailab.services.files.storage import Incoming

FILE_FIELD = "file"
MAX_HEADER_BYTES = 16 * 1024  # of one part's headers
MAX_OTHER_BYTES = 64 * 1024  # of the parts that are not the file


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` body; UnsupportedType (415) for any other body."""
    media, options = parse_options_header(content_type or "")
    if media != b"multipart/form-data":
        raise UnsupportedType("upload the file as multipart/form-data, in a field named 'file'")
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInput("the multipart body has no boundary")
    return boundary


class _FilePartReader:
    """Callbacks for python-multipart's parser that write the ``file`` part to ``incoming``."""

    def __init__(self, incoming: Incoming) -> None:
        self.incoming = incoming
        self.filename: str | None = None
        self.found = False
        self.complete = False  # the file part's closing boundary was seen
        self._in_file = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._other_bytes = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0
        self._in_file = False

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise InvalidInput("a part of the multipart body has headers that are too long")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if disposition == b"form-data" and name == FILE_FIELD and not self.found:
            self._in_file = self.found = True
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.incoming.write(data[start:end])
            return
        self._other_bytes += end - start
        if self._other_bytes > MAX_OTHER_BYTES:
            raise TooLarge(f"the fields beside 'file' are larger than {MAX_OTHER_BYTES} bytes")

    def _part_end(self) -> None:
        if self._in_file:
            self.complete = True
        self._in_file = False


async def read_file_part(stream: AsyncIterator[bytes], boundary: bytes, incoming: Incoming) -> str | None:
    """Write the ``file`` part of a multipart body to ``incoming``; returns the name the client gave.

    Raises InvalidInput when there is no such part or the body is malformed, TooLarge past the limit.
    """
    reader = _FilePartReader(incoming)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidInput(f"the multipart body is malformed ({exc})") from None
    if not reader.found:
        raise InvalidInput("the multipart body has no field named 'file'")
    if not reader.complete:
        raise InvalidInput("the multipart body ended before the file did")
    return reader.filename
