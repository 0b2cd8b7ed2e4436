"""Files: accept an upload, read its text in the background, search it, list and delete.

An upload is accepted in this order, so a refusal leaves nothing behind:

1. the bytes are streamed to an incoming file, counted against ``AILAB_MAX_UPLOAD_BYTES`` (413) and
   hashed as they arrive;
2. their real type is read from the bytes and must agree with the name (415);
3. the same bytes uploaded before by the same user are that file (nothing new is stored);
4. an image is checked by decoding it (422 when corrupt);
5. the bytes are renamed to the new id, then the row is inserted (``processing``, ``ready`` for images);
6. a document's text is read in a worker process (``extract.py``), chunked with its pages and stored
   with the status ``ready`` in one transaction. The upload waits for that up to
   ``AILAB_UPLOAD_WAIT_SECONDS``: a document that turns out corrupt or hostile in that time is removed
   and refused (422); a longer one is answered ``processing`` and polled, and if it fails then its
   bytes are removed and its row says ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.repos import files as repo
from ailab.db.repos.files import FAILED, PROCESSING, READY, ChunkHit, FileRow, NewChunk
from ailab.db.tables import utcnow
from ailab.errors import AILabError, InvalidInput, NotFound
from ailab.ids import time_ordered_id
from ailab.services.files.chunking import chunk_pages
from ailab.services.files.extract import ExtractionFailed, Extractor
from ailab.services.files.images import prepare_image
from ailab.services.files.kinds import HEAD_BYTES, FileKind, detect
from ailab.services.files.storage import BlobStore, Incoming
from ailab.services.files.vectors import ChunkEmbedder, fuse

log = logging.getLogger("ailab.files")
RERANK_CANDIDATES = 5  # full-text hits per result re-ranked by embeddings
PROGRESS_WRITE_SECONDS = 1.0  # progress reaches the database at most this often per file
MAX_FILENAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class Upload:
    """An accepted upload: its row now, and whether it is new (False: the same bytes were there)."""

    file: FileRow
    created: bool


def clean_filename(name: str | None) -> str:
    """The name to show for an upload: its last path part, without control characters, bounded."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:MAX_FILENAME_CHARS] or "upload"


class FileService:
    """Uploads of every user (see the module docstring). Every method takes the owner: another
    user's file is not found."""

    def __init__(
        self, db: Database, settings: Settings, extractor: Extractor, embedder: ChunkEmbedder | None = None
    ) -> None:
        self._db = db
        self._settings = settings
        self._extractor = extractor
        self.embedder = embedder
        self.blobs = BlobStore(settings.data_dir / "uploads")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._progress_written: dict[str, float] = {}

    async def start(self) -> None:
        """Create the folders, remove what a crash left, and read again what a restart interrupted."""
        self.blobs.ensure()
        await self.sweep()
        for row in await self._db.run_read(repo.processing_files):
            path = self.blobs.path(row.id)
            if not path.is_file():
                await self._fail(row.id, "the upload was interrupted by a restart")
                continue
            kind = detect(await asyncio.to_thread(_head, path), row.filename)
            self._start_reading(row.id, path, kind)
        if self.embedder is not None:
            for file_id in await self._db.run_read(repo.files_missing_embeddings, self.embedder.model_id):
                if file_id not in self._tasks:
                    self._track(file_id, asyncio.get_running_loop().create_task(self._embed(file_id)))

    async def aclose(self) -> None:
        """Stop reading files (they are read again at the next start) and the extraction workers."""
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._extractor.aclose()

    async def sweep(self) -> int:
        """Remove bytes that no row names (a deleted user's files, a crash's leftovers)."""
        known = set(await self._db.run_read(repo.all_file_ids))
        return await asyncio.to_thread(self.blobs.sweep, known)

    async def ids_of(self, owner_id: str) -> list[str]:
        """The ids of a user's files (their bytes to remove once the user is deleted)."""
        return await self._db.run_read(repo.file_ids_of, owner_id)

    async def remove_bytes(self, file_ids: list[str]) -> None:
        """Remove the bytes of files whose rows are gone (a deleted user's)."""
        for file_id in file_ids:
            await asyncio.to_thread(self.blobs.remove, file_id)

    def receive(self) -> Incoming:
        """A new incoming upload, limited to ``AILAB_MAX_UPLOAD_BYTES`` (enter it as a context manager)."""
        return self.blobs.receive(self._settings.max_upload_bytes, HEAD_BYTES)

    async def accept(self, owner_id: str | None, incoming: Incoming, filename: str | None) -> Upload:
        """Store a received upload as a file of ``owner_id`` (see the module docstring).

        Raises UnsupportedType (415) or InvalidInput (422); the incoming file is removed whatever happens.
        """
        try:
            if incoming.size == 0:
                raise InvalidInput("the file is empty")
            name = clean_filename(filename)
            kind = detect(bytes(incoming.head), name)
            sha256 = await asyncio.to_thread(incoming.finish)
            existing = await self._db.run_read(repo.find_by_hash, owner_id, sha256)
            if existing is not None:
                return Upload(existing, created=False)
            if kind.family == "image":
                await asyncio.to_thread(_check_image, incoming.path)
            now = utcnow()
            row = FileRow(
                id=time_ordered_id(),
                owner_id=owner_id,
                filename=name,
                content_type=kind.content_type,
                size=incoming.size,
                sha256=sha256,
                status=READY if kind.family == "image" else PROCESSING,
                progress=1.0 if kind.family == "image" else 0.0,
                error=None,
                pages=None,
                chars=None,
                created_at=now,
                updated_at=now,
            )
            path = await asyncio.to_thread(self.blobs.keep, incoming, row.id)
        finally:
            incoming.discard()
        try:
            await self._db.run_write(repo.insert_file, row)
        except IntegrityError:  # the same bytes, uploaded by the same user at the same moment
            self.blobs.remove(row.id)
            existing = await self._db.run_read(repo.find_by_hash, owner_id, sha256)
            if existing is None:
                raise
            return Upload(existing, created=False)
        except BaseException:
            self.blobs.remove(row.id)
            raise
        if row.status == PROCESSING:
            return await self._read_now(row, path, kind)
        return Upload(row, created=True)

    async def _read_now(self, row: FileRow, path: Path, kind: FileKind) -> Upload:
        """Read a new document's text, waiting up to the setting; a failure in that time is a refusal."""
        task = self._start_reading(row.id, path, kind)
        try:
            await asyncio.wait_for(asyncio.shield(task), self._settings.upload_wait_seconds)
        except TimeoutError:
            return Upload(await self.get(row.owner_id, row.id), created=True)
        current = await self.get(row.owner_id, row.id)
        if current.status == FAILED:
            await self._db.run_write(repo.delete_file, row.owner_id, row.id)
            raise ExtractionFailed(current.error or "the document could not be read")
        return Upload(current, created=True)

    def _start_reading(self, file_id: str, path: Path, kind: FileKind) -> asyncio.Task[None]:
        return self._track(file_id, asyncio.get_running_loop().create_task(self._read(file_id, path, kind)))

    def _track(self, file_id: str, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """Keep ``task`` as the file's work in progress (reading, then embedding) until it ends."""
        self._tasks[file_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(file_id) is done:
                del self._tasks[file_id]

        task.add_done_callback(forget)
        return task

    async def _embed(self, file_id: str) -> None:
        """Store the vectors of a ready file's chunks (AILAB_FILES_EMBEDDING_MODEL); a failure leaves the
        file to full-text search alone, and it is tried again at the next start."""
        assert self.embedder is not None
        try:
            await self.embedder.embed_file(file_id)
        except AILabError as exc:
            log.warning("embedding file %s with %s failed: %s", file_id, self.embedder.model_id, exc.message)

    async def _read(self, file_id: str, path: Path, kind: FileKind) -> None:
        """Extract, chunk and store a document's text; on failure remove its bytes, mark it failed."""
        try:
            pages = await self._extractor.extract(path, kind, on_progress=self._progress_writer(file_id))
            chunks = [NewChunk(c.index, c.page, c.text) for c in chunk_pages(pages)]
            numbered = {p.page for p in pages if p.page is not None}
            chars = sum(len(p.text) for p in pages)
            stored = await self._db.run_write(
                repo.store_text, file_id, chunks, pages=len(numbered) or len(pages), chars=chars
            )
            if not stored:  # deleted while it was read
                self.blobs.remove(file_id)
            elif self.embedder is not None:  # after the answer: an upload does not wait for a model
                self._track(file_id, asyncio.get_running_loop().create_task(self._embed(file_id)))
        except asyncio.CancelledError:
            raise  # shutdown: read again at the next start
        except AILabError as exc:
            await self._fail(file_id, exc.message)
        except Exception as exc:
            log.exception("reading file %s failed", file_id)
            await self._fail(
                file_id, f"the document could not be read (internal error: {type(exc).__name__})"
            )
        finally:
            self._progress_written.pop(file_id, None)

    def _progress_writer(self, file_id: str) -> Callable[[float], None]:
        def on_progress(fraction: float) -> None:
            now = time.monotonic()
            if now - self._progress_written.get(file_id, 0.0) < PROGRESS_WRITE_SECONDS or fraction >= 1.0:
                return
            self._progress_written[file_id] = now
            task = asyncio.get_running_loop().create_task(
                self._db.run_write(repo.set_progress, file_id, round(fraction, 3))
            )
            task.add_done_callback(_log_failure)

        return on_progress

    async def _fail(self, file_id: str, error: str) -> None:
        await self._db.run_write(repo.mark_failed, file_id, error)
        await asyncio.to_thread(self.blobs.remove, file_id)

    async def wait_read(self, file_id: str) -> None:
        """Wait until this process is done with a file: read, and embedded (tests, the CLI)."""
        # A finished task stays listed until its done-callback runs: awaiting it again would not yield.
        while (task := self._tasks.get(file_id)) is not None and not task.done():
            await asyncio.shield(task)

    async def get(self, owner_id: str | None, file_id: str) -> FileRow:
        """The owner's file; NotFound otherwise."""
        row = await self._db.run_read(repo.get_file, owner_id, file_id)
        if row is None:
            raise NotFound(f"file {file_id!r} not found")
        return row

    async def list_files(
        self, owner_id: str | None, *, limit: int, before: tuple[dt.datetime, str] | None = None
    ) -> list[FileRow]:
        """The owner's files, newest first."""
        return await self._db.run_read(repo.list_files, owner_id, limit=limit, before=before)

    async def content(self, owner_id: str | None, file_id: str) -> tuple[FileRow, Path]:
        """The owner's file and where its bytes are; NotFound when gone (a failed file has none)."""
        row = await self.get(owner_id, file_id)
        path = self.blobs.path(row.id)
        if row.status == FAILED or not path.is_file():
            raise NotFound(f"file {file_id!r} has no content (status {row.status})")
        return row, path

    async def delete(self, owner_id: str | None, file_id: str) -> None:
        """Delete the owner's file: its row and chunks, then its bytes. NotFound otherwise."""
        if not await self._db.run_write(repo.delete_file, owner_id, file_id):
            raise NotFound(f"file {file_id!r} not found")
        task = self._tasks.get(file_id)
        if task is not None:
            task.cancel()
        await asyncio.to_thread(self.blobs.remove, file_id)

    async def search(
        self, owner_id: str | None, query: str, *, limit: int, file_ids: Sequence[str] | None = None
    ) -> list[ChunkHit]:
        """The owner's chunks that match ``query``'s words, best first."""
        words = repo.query_words(query)
        if not words:
            return []  # punctuation alone matches nothing
        if self.embedder is None:
            return await self._db.run_read(
                repo.search_chunks, owner_id, words, limit=limit, file_ids=file_ids
            )
        # Second stage: the full-text candidates re-ranked with their similarity to the question.
        hits = await self._db.run_read(
            repo.search_chunks, owner_id, words, limit=limit * RERANK_CANDIDATES, file_ids=file_ids
        )
        question = await self.embedder.question(query) if hits else None
        if question is None:
            return hits[:limit]
        by_id = {hit.chunk_id: hit for hit in hits}
        similar = await self.embedder.rank_chunks(question, list(by_id))
        return [by_id[chunk_id] for chunk_id in fuse(list(by_id), similar)[:limit]]


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def _check_image(path: Path) -> None:
    prepare_image(path.read_bytes())  # raises InvalidInput for bytes that do not decode


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("recording a file's progress failed: %s", task.exception())
