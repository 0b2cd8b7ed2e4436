"""``/files``: uploads, their status while their text is read, and search over them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ailab.api.schemas.common import Out, Timestamp

FileStatus = Literal["processing", "ready", "failed"]


class FileOut(Out):
    """A file: what it is, and whether its text is ready to be searched and attached."""

    id: str
    filename: str = Field(description="the name it was uploaded with (metadata only)")
    content_type: str = Field(description="read from its bytes, not from the client")
    size: int
    sha256: str
    status: FileStatus = Field(description="`processing` while its text is read, then `ready` or `failed`")
    progress: float = Field(description="how much of its text has been read, 0 to 1")
    error: str | None = Field(description="why it failed")
    pages: int | None = Field(description="a document's pages (1 for one without pages)")
    chars: int | None = Field(description="characters of text found")
    created_at: Timestamp


class FileList(BaseModel):
    items: list[FileOut]
    next_cursor: str | None = Field(description="pass it back as `cursor` for the next page")


class SearchHit(BaseModel):
    """A piece of a file's text that matches the search."""

    file_id: str
    filename: str
    page: int | None = Field(description="its page, for a document with pages")
    text: str
    score: float = Field(description="relevance: higher is better (comparable within one search)")


class SearchResults(BaseModel):
    items: list[SearchHit]


# OpenAPI of POST /files: a multipart body read as a stream by the route itself.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}
