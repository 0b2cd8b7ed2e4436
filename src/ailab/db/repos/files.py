"""Queries on uploaded files and their text chunks, and full-text search over them.

Transaction functions (a sync ``Connection``, run through ``Database.run_read`` / ``run_write``). Every
read takes the owner: a file of another user is simply not found. Search uses each database's own
engine: FTS5 ``bm25`` on SQLite, ``ts_rank_cd`` over a GIN-indexed ``tsvector`` on PostgreSQL (see
migration 0006); both rank chunks that match more of the query's words higher.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, delete, insert, select, text, update

from ailab.db.tables import FileChunk, StoredFile, utcnow

FILES = cast(Table, StoredFile.__table__)
CHUNKS = cast(Table, FileChunk.__table__)
PROCESSING, READY, FAILED = "processing", "ready", "failed"
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 32


@dataclass(frozen=True, slots=True)
class FileRow:
    """A file's metadata."""

    id: str
    owner_id: str | None
    filename: str
    content_type: str
    size: int
    sha256: str
    status: str
    progress: float
    error: str | None
    pages: int | None
    chars: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """A chunk that matched a search, with its file."""

    chunk_id: int
    file_id: str
    filename: str
    idx: int
    page: int | None
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class NewChunk:
    idx: int
    page: int | None
    text: str


def _file(row: Row[Any]) -> FileRow:
    return FileRow(**row._mapping)


def _owned(owner_id: str | None) -> Any:
    return FILES.c.owner_id.is_(None) if owner_id is None else FILES.c.owner_id == owner_id


def get_file(conn: Connection, owner_id: str | None, file_id: str) -> FileRow | None:
    """The owner's file ``file_id``, or None (unknown, or another user's)."""
    row = conn.execute(select(FILES).where(FILES.c.id == file_id, _owned(owner_id))).first()
    return _file(row) if row is not None else None


def get_files(conn: Connection, owner_id: str | None, file_ids: Sequence[str]) -> dict[str, FileRow]:
    """The owner's files among ``file_ids``, by id (another user's are missing from the answer)."""
    rows = conn.execute(select(FILES).where(FILES.c.id.in_(list(file_ids)), _owned(owner_id)))
    return {row.id: _file(row) for row in rows}


def find_by_hash(conn: Connection, owner_id: str | None, sha256: str) -> FileRow | None:
    """The owner's file with these bytes, if they uploaded them before."""
    row = conn.execute(select(FILES).where(FILES.c.sha256 == sha256, _owned(owner_id))).first()
    return _file(row) if row is not None else None


def list_files(
    conn: Connection, owner_id: str | None, *, limit: int, before: tuple[dt.datetime, str] | None = None
) -> list[FileRow]:
    """The owner's files, newest first; ``before`` is the (created_at, id) of the last one seen."""
    query = select(FILES).where(_owned(owner_id))
    if before is not None:
        created, file_id = before
        query = query.where(
            (FILES.c.created_at < created) | ((FILES.c.created_at == created) & (FILES.c.id < file_id))
        )
    query = query.order_by(FILES.c.created_at.desc(), FILES.c.id.desc()).limit(limit)
    return [_file(row) for row in conn.execute(query)]


def insert_file(conn: Connection, row: FileRow) -> None:
    """Store a new file's metadata."""
    conn.execute(insert(FILES).values(**asdict(row)))


def set_progress(conn: Connection, file_id: str, progress: float) -> None:
    """Record how far the reading of a file has got (0 to 1)."""
    conn.execute(
        update(FILES)
        .where(FILES.c.id == file_id, FILES.c.status == PROCESSING)
        .values(progress=progress, updated_at=utcnow())
    )


def store_text(conn: Connection, file_id: str, chunks: Sequence[NewChunk], *, pages: int, chars: int) -> bool:
    """Store a file's chunks and mark it ready, in one transaction (a re-run replaces them).

    False when the file is gone (deleted while it was read): nothing is stored then.
    """
    exists = conn.execute(select(FILES.c.id).where(FILES.c.id == file_id)).first()
    if exists is None:
        return False
    conn.execute(delete(CHUNKS).where(CHUNKS.c.file_id == file_id))
    if chunks:
        conn.execute(
            insert(CHUNKS),
            [{"file_id": file_id, "idx": c.idx, "page": c.page, "text": c.text} for c in chunks],
        )
    conn.execute(
        update(FILES)
        .where(FILES.c.id == file_id)
        .values(status=READY, progress=1.0, error=None, pages=pages, chars=chars, updated_at=utcnow())
    )
    return True


def mark_failed(conn: Connection, file_id: str, error: str) -> None:
    """Mark a file failed (its bytes are removed by the caller; it has no chunks)."""
    conn.execute(delete(CHUNKS).where(CHUNKS.c.file_id == file_id))
    conn.execute(
        update(FILES).where(FILES.c.id == file_id).values(status=FAILED, error=error, updated_at=utcnow())
    )


def delete_file(conn: Connection, owner_id: str | None, file_id: str) -> bool:
    """Delete the owner's file and its chunks; False when there is no such file of theirs."""
    found = conn.execute(select(FILES.c.id).where(FILES.c.id == file_id, _owned(owner_id))).first()
    if found is None:
        return False
    conn.execute(delete(CHUNKS).where(CHUNKS.c.file_id == file_id))  # FTS5 triggers need row deletes
    conn.execute(delete(FILES).where(FILES.c.id == file_id))
    return True


def file_ids_of(conn: Connection, owner_id: str) -> list[str]:
    """The ids of a user's files."""
    return list(conn.execute(select(FILES.c.id).where(FILES.c.owner_id == owner_id)).scalars())


def all_file_ids(conn: Connection) -> list[str]:
    """The id of every file (to tell which stored bytes belong to none)."""
    return list(conn.execute(select(FILES.c.id)).scalars())


def processing_files(conn: Connection) -> list[FileRow]:
    """Files whose reading was interrupted (a restart): to read again."""
    return [_file(row) for row in conn.execute(select(FILES).where(FILES.c.status == PROCESSING))]


def file_chunks(conn: Connection, file_ids: Sequence[str]) -> list[tuple[str, int, int | None, str]]:
    """All chunks of these files: (file_id, idx, page, text), in reading order."""
    query = (
        select(CHUNKS.c.file_id, CHUNKS.c.idx, CHUNKS.c.page, CHUNKS.c.text)
        .where(CHUNKS.c.file_id.in_(list(file_ids)))
        .order_by(CHUNKS.c.file_id, CHUNKS.c.idx)
    )
    return [(r.file_id, r.idx, r.page, r.text) for r in conn.execute(query)]


def chunks_without_embedding(conn: Connection, file_id: str, model: str) -> list[tuple[int, str]]:
    """(chunk id, text) of a file's chunks with no vector from ``model``, in order."""
    query = (
        select(CHUNKS.c.id, CHUNKS.c.text)
        .where(CHUNKS.c.file_id == file_id)
        .where((CHUNKS.c.embedding_model.is_(None)) | (CHUNKS.c.embedding_model != model))
        .order_by(CHUNKS.c.idx)
    )
    return [(r.id, r.text) for r in conn.execute(query)]


def store_embeddings(conn: Connection, vectors: Sequence[tuple[int, bytes]], model: str) -> None:
    """Store chunks' vectors (made by ``model``)."""
    if vectors:
        conn.execute(
            update(CHUNKS)
            .where(CHUNKS.c.id == bindparam("chunk_id"))
            .values(embedding=bindparam("vector"), embedding_model=model),
            [{"chunk_id": chunk_id, "vector": vector} for chunk_id, vector in vectors],
        )


def files_missing_embeddings(conn: Connection, model: str) -> list[str]:
    """Ready files with chunks that have no vector from ``model`` (to embed at start)."""
    query = (
        select(CHUNKS.c.file_id)
        .join(FILES, FILES.c.id == CHUNKS.c.file_id)
        .where(FILES.c.status == READY)
        .where((CHUNKS.c.embedding_model.is_(None)) | (CHUNKS.c.embedding_model != model))
        .distinct()
    )
    return list(conn.execute(query).scalars())


def file_embeddings(conn: Connection, file_ids: Sequence[str], model: str) -> list[tuple[str, int, bytes]]:
    """(file_id, idx, vector) of these files' chunks embedded by ``model``."""
    query = select(CHUNKS.c.file_id, CHUNKS.c.idx, CHUNKS.c.embedding).where(
        CHUNKS.c.file_id.in_(list(file_ids)), CHUNKS.c.embedding_model == model
    )
    return [(r.file_id, r.idx, r.embedding) for r in conn.execute(query)]


def chunk_embeddings(conn: Connection, chunk_ids: Sequence[int], model: str) -> list[tuple[int, bytes]]:
    """(chunk id, vector) of these chunks embedded by ``model``."""
    query = select(CHUNKS.c.id, CHUNKS.c.embedding).where(
        CHUNKS.c.id.in_(list(chunk_ids)), CHUNKS.c.embedding_model == model
    )
    return [(r.id, r.embedding) for r in conn.execute(query)]


def query_words(query: str) -> list[str]:
    """The words of a search, de-duplicated, at most :data:`MAX_QUERY_WORDS` (operators are not
    offered: every word is literal)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word not in ("or", "and", "not", "near"):
            seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_WORDS]


_SQLITE_SEARCH = """
SELECT c.id, c.file_id, f.filename, c.idx, c.page, c.text, -bm25(file_chunks_fts) AS score
FROM file_chunks_fts
JOIN file_chunks c ON c.id = file_chunks_fts.rowid
JOIN files f ON f.id = c.file_id
WHERE file_chunks_fts MATCH :match AND f.status = 'ready' AND {owner} {only}
ORDER BY bm25(file_chunks_fts), c.file_id, c.idx
LIMIT :limit
"""
_POSTGRES_SEARCH = """
SELECT c.id, c.file_id, f.filename, c.idx, c.page, c.text, ts_rank_cd(c.tsv, q) AS score
FROM file_chunks c
JOIN files f ON f.id = c.file_id, websearch_to_tsquery('english', :match) AS q
WHERE c.tsv @@ q AND f.status = 'ready' AND {owner} {only}
ORDER BY score DESC, c.file_id, c.idx
LIMIT :limit
"""


def search_chunks(
    conn: Connection,
    owner_id: str | None,
    words: Sequence[str],
    *,
    limit: int,
    file_ids: Sequence[str] | None = None,
) -> list[ChunkHit]:
    """The owner's chunks (of ready files, of ``file_ids`` when given) that match any of ``words``,
    best first. ``words`` come from :func:`query_words`."""
    if not words:
        return []
    params: dict[str, Any] = {"limit": limit, "owner": owner_id}
    if conn.dialect.name == "sqlite":
        # Each word quoted: FTS5 reads it as a string, never as query syntax.
        params["match"] = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
        template = _SQLITE_SEARCH
    else:
        params["match"] = " or ".join(words)  # websearch syntax: it never raises on odd input
        template = _POSTGRES_SEARCH
    owner = "f.owner_id IS NULL" if owner_id is None else "f.owner_id = :owner"
    only = ""
    statement = text(template.format(owner=owner, only=only))
    if file_ids is not None:
        statement = text(template.format(owner=owner, only="AND c.file_id IN :ids")).bindparams(
            bindparam("ids", expanding=True)
        )
        params["ids"] = list(file_ids)
    return [
        ChunkHit(r.id, r.file_id, r.filename, r.idx, r.page, r.text, round(float(r.score), 6))
        for r in conn.execute(statement, params)
    ]
