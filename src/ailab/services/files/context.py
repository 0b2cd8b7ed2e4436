"""What a chat turn's attached files give the model: document text as context, and images.

A document's whole text goes in when all the attached documents fit the budget (a share of the model's
context window); otherwise the chunks that best match the question (the database's full-text ranking,
blended with embeddings' similarity when ``AILAB_FILES_EMBEDDING_MODEL`` is set), then the first chunks
of each file, until the budget is spent. Each piece is headed by its file and page,
and the answer's ``thought_process`` names the pages used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ailab.db.engine import Database
from ailab.db.repos import files as repo
from ailab.db.repos.files import FAILED, PROCESSING, READY, FileRow
from ailab.errors import Conflict, InvalidInput, NotFound
from ailab.providers.base import ImagePart
from ailab.services.files.images import prepare_image
from ailab.services.files.storage import BlobStore
from ailab.services.files.vectors import ChunkEmbedder, fuse

MAX_ATTACHED_FILES = 20
SEARCH_CANDIDATES = 200
CONTEXT_PREAMBLE = (
    "The user attached these documents. Use them to answer, and say which file and page you used.\n"
)


@dataclass(frozen=True, slots=True)
class Attachments:
    """A turn's files, ready for the model."""

    context: str = ""  # the documents' text, headed by file and page ("" when none)
    images: tuple[ImagePart, ...] = ()
    sources: str = ""  # e.g. "report.pdf (pages 2, 5); notes.md", for the thought process
    files: list[dict[str, Any]] = field(default_factory=list)  # what the user message records

    @property
    def empty(self) -> bool:
        return not self.context and not self.images


def _heading(row: FileRow, page: int | None) -> str:
    return f"--- {row.filename}, page {page} ---" if page is not None else f"--- {row.filename} ---"


def _sources(rows: dict[str, FileRow], used: Sequence[tuple[str, int, int | None, str]]) -> str:
    pages: dict[str, list[int]] = {}
    for file_id, _idx, page, _text in used:
        listed = pages.setdefault(file_id, [])
        if page is not None and page not in listed:
            listed.append(page)
    parts = []
    for file_id, numbers in pages.items():
        name = rows[file_id].filename
        if not numbers:
            parts.append(name)
        else:
            label = "page" if len(numbers) == 1 else "pages"
            parts.append(f"{name} ({label} {', '.join(str(n) for n in sorted(numbers))})")
    return "; ".join(parts)


class AttachmentReader:
    """Turns the file ids of a ``/chat`` request into :class:`Attachments` for its owner."""

    def __init__(self, db: Database, blobs: BlobStore, embedder: ChunkEmbedder | None = None) -> None:
        self._db = db
        self._blobs = blobs
        self._embedder = embedder

    async def read(
        self,
        owner_id: str | None,
        file_ids: Sequence[str],
        question: str,
        budget_chars: int,
        *,
        skip_unusable: bool = False,
    ) -> Attachments:
        """The files' context for ``question`` within ``budget_chars`` of document text.

        Raises NotFound (unknown or another user's file), Conflict (still being read) or InvalidInput
        (a file that failed, or too many files); with ``skip_unusable`` (the files of earlier messages)
        such files are left out instead, and only the newest :data:`MAX_ATTACHED_FILES` are read.
        """
        ids = list(dict.fromkeys(file_ids))
        if len(ids) > MAX_ATTACHED_FILES:
            if not skip_unusable:
                raise InvalidInput(f"at most {MAX_ATTACHED_FILES} files can be attached to one message")
            ids = ids[:MAX_ATTACHED_FILES]
        rows = await self._db.run_read(repo.get_files, owner_id, ids)
        if skip_unusable:
            ids = [i for i in ids if i in rows and rows[i].status == READY]
        for file_id in ids:
            row = rows.get(file_id)
            if row is None:
                raise NotFound(f"file {file_id!r} not found")
            if row.status == PROCESSING:
                raise Conflict(
                    f"file {row.filename!r} is still being read ({row.progress:.0%}); "
                    "send the message again when its status is ready"
                )
            if row.status == FAILED:
                raise InvalidInput(f"file {row.filename!r} could not be read: {row.error}")
        if not ids:
            return Attachments()
        ordered = [rows[i] for i in ids]
        images = tuple(
            [
                await asyncio.to_thread(_load_image, self._blobs, row)
                for row in ordered
                if row.content_type.startswith("image/")
            ]
        )
        documents = [row for row in ordered if not row.content_type.startswith("image/")]
        recorded = [{"id": r.id, "filename": r.filename, "content_type": r.content_type} for r in ordered]
        if not documents:
            return Attachments(images=images, files=recorded)
        order = {row.id: n for n, row in enumerate(documents)}  # the order the user attached them in
        used = await self._choose(owner_id, order, question, budget_chars)
        used.sort(key=lambda chunk: (order[chunk[0]], chunk[1]))
        pieces = [CONTEXT_PREAMBLE]
        last: tuple[str, int | None] | None = None
        for file_id, _idx, page, text in used:
            if (file_id, page) != last:
                pieces.append(_heading(rows[file_id], page))
                last = (file_id, page)
            pieces.append(text)
        empty = [row.filename for row in documents if not row.chars]
        if empty:
            pieces.append(f"(No text could be found in: {', '.join(empty)}.)")
        return Attachments(
            context="\n".join(pieces), images=images, sources=_sources(rows, used), files=recorded
        )

    async def _choose(
        self, owner_id: str | None, order: dict[str, int], question: str, budget: int
    ) -> list[tuple[str, int, int | None, str]]:
        """The chunks of the documents (by id, in attached order) to show: all when they fit, else the
        best matches, then each file's first."""
        ids = list(order)
        every = await self._db.run_read(repo.file_chunks, ids)
        if sum(len(chunk[3]) for chunk in every) <= budget:
            return every
        by_key = {(c[0], c[1]): c for c in every}
        ranked: list[tuple[str, int]] = []
        words = repo.query_words(question)
        if words:
            hits = await self._db.run_read(
                repo.search_chunks, owner_id, words, limit=SEARCH_CANDIDATES, file_ids=ids
            )
            ranked = [(hit.file_id, hit.idx) for hit in hits]
        if self._embedder is not None:
            vector = await self._embedder.question(question)
            if vector is not None:  # both rankings blended: words in common, and meaning
                ranked = fuse(ranked, await self._embedder.rank_files(vector, ids))
        # Then the opening chunks of each file in turn (a title page, an abstract), for a question
        # whose words the text does not contain ("summarise this").
        firsts = sorted(every, key=lambda c: (c[1], order[c[0]]))
        ranked += [(c[0], c[1]) for c in firsts]
        chosen: dict[tuple[str, int], None] = {}
        spent = 0
        for key in ranked:
            if key in chosen:
                continue
            size = len(by_key[key][3])
            if spent + size > budget:
                continue
            chosen[key] = None
            spent += size
        return [by_key[key] for key in chosen]


def _load_image(blobs: BlobStore, row: FileRow) -> ImagePart:
    path = blobs.path(row.id)
    if not path.is_file():
        raise NotFound(f"file {row.id!r} has no content")
    return prepare_image(path.read_bytes())
