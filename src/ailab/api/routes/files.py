"""``/files``: upload documents and images, follow their reading, search their text, delete them.

Only the owner sees a file: another user's is not found (404). ``POST /files`` reads the multipart body
as it arrives (``api/uploads.py``): past ``AILAB_MAX_UPLOAD_BYTES`` it answers 413, a type that is not
accepted or that the name lies about 415, a corrupt document or image 422, and keeps nothing of a
refused upload. A browser signed in with its cookie sends an upload with ``X-Requested-With`` (a header
another site's page cannot add without a preflight this server refuses).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.files import UPLOAD_BODY, FileList, FileOut, SearchHit, SearchResults
from ailab.api.uploads import multipart_boundary, read_file_part
from ailab.services.sessions.service import decode_cursor, encode_cursor

router = APIRouter(tags=["files"], responses=problems(*COMMON_PROBLEMS, 404))
FileId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="a file id")]


@router.post(
    "/files",
    status_code=201,
    response_model=FileOut,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": FileOut, "description": "the same bytes were uploaded before: that file"},
        202: {"model": FileOut, "description": "accepted; its text is still being read (poll it)"},
        413: {"description": "larger than AILAB_MAX_UPLOAD_BYTES; nothing was kept"},
        415: {"description": "not an accepted type, or not what its name says; nothing was kept"},
        422: {"description": "a corrupt or hostile document or image; nothing was kept"},
    },
)
async def upload_file(request: Request, user: CurrentUser, services: ServicesDep) -> Response:
    """Upload a file (multipart, field ``file``): PDF, text, Markdown, CSV, code, HTML, DOCX, PNG, JPEG,
    WebP or GIF. A document's text is read before the answer when that takes less than
    ``AILAB_UPLOAD_WAIT_SECONDS`` (201, ``ready``), else the answer is 202 ``processing``."""
    boundary = multipart_boundary(request.headers.get("content-type"))
    with services.files.receive() as incoming:
        filename = await read_file_part(request.stream(), boundary, incoming)
        upload = await services.files.accept(user.id, incoming, filename)
    out = FileOut.model_validate(upload.file)
    status = 201 if upload.created else 200
    if out.status == "processing":
        status = 202
    body = out.__pydantic_serializer__.to_json(out)
    return Response(body, status_code=status, media_type="application/json")


@router.get("/files")
async def list_files(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> FileList:
    """Your files, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    rows = await services.files.list_files(
        user.id, limit=limit + 1, before=decode_cursor(cursor) if cursor else None
    )
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
    return FileList(items=[FileOut.model_validate(row) for row in items], next_cursor=next_cursor)


@router.get("/files/search")
async def search_files(
    user: CurrentUser,
    services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="words to look for")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResults:
    """The pieces of your files' text that best match ``q`` (the database's full-text ranking: any of
    the words, more of them ranks higher)."""
    hits = await services.files.search(user.id, q, limit=limit)
    return SearchResults(
        items=[
            SearchHit(file_id=h.file_id, filename=h.filename, page=h.page, text=h.text, score=h.score)
            for h in hits
        ]
    )


@router.get("/files/{file_id}")
async def get_file(file_id: FileId, user: CurrentUser, services: ServicesDep) -> FileOut:
    """One of your files, with its status and progress."""
    return FileOut.model_validate(await services.files.get(user.id, file_id))


@router.get(
    "/files/{file_id}/content",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the file's bytes, with the content type read from them",
        }
    },
)
async def file_content(file_id: FileId, user: CurrentUser, services: ServicesDep) -> FileResponse:
    """The bytes of one of your files, as uploaded (as an attachment: a browser never runs them)."""
    row, path = await services.files.content(user.id, file_id)
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.filename,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )


@router.delete("/files/{file_id}", status_code=204)
async def delete_file(file_id: FileId, user: CurrentUser, services: ServicesDep) -> Response:
    """Delete one of your files: its text and its bytes (messages that named it keep its name)."""
    await services.files.delete(user.id, file_id)
    return Response(status_code=204)
