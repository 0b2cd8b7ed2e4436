"""Text extraction from uploaded files, arranged so that no document can take the server down.

Parsers of PDF, DOCX and HTML are large attack surfaces (pypdf alone had five denial-of-service CVEs in
two years, and CPython's html.parser had quadratic cases), so they run in worker processes
(``extract_worker``) that the server can kill:

- each worker caps its own address space (``RLIMIT_AS``), so a memory bomb fails in the worker with
  "needed more than 512 MiB of memory" instead of waking the kernel's OOM killer;
- the parent enforces a wall-clock timeout per file and kills a worker that overruns; a worker that
  dies or is killed is replaced by a fresh one on the next job, and the job fails with a short message;
- workers live across jobs (importing pypdfium2 costs more than reading a small PDF), one job at a time
  each, with a queue of idle workers in front; the event loop only waits on pipes.

Plain text is decoded in this process, on a thread: decoding UTF-8 is linear and has nothing to exploit.

The parent and a worker speak frames: a 4-byte big-endian length, then an orjson object. The worker
sends ``{"ready"}`` once started, then for each request ``{"started"}``, any number of
``{"progress": fraction}``, and one of ``{"pages": [[page, text], ...]}`` or ``{"error": message}``.
A worker that dies before ``started`` never saw the job, which is then retried once on a fresh worker.

A PDF with more pages than ``max_pages`` fails as a whole rather than being cut short: a search that
silently misses the end of a document is worse than a clear refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ailab.errors import AILabError, InvalidInput
from ailab.services.files.kinds import FileKind

MiB = 1024 * 1024
WORKER_MODULE = "ailab.services.files.extract_worker"
_STARTUP_TIMEOUT_S = 60.0  # importing the parsers on a loaded machine; not part of a job's time
_CLOSE_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class PageText:
    """The text of one PDF page (numbered from 1), or of a whole other document (page None)."""

    page: int | None
    text: str


class ExtractionFailed(InvalidInput):
    """A document that could not be read: corrupt, encrypted, hostile, too big once inflated, too slow."""

    code = "extraction_failed"


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """What one document may cost. The defaults suit a 2-core server and a 25 MB upload cap."""

    timeout_s: float = 30.0  # wall clock per document, enforced by killing the worker
    memory_bytes: int = 512 * MiB  # address space of a worker process (RLIMIT_AS)
    max_pages: int = 2000  # a longer PDF fails as a whole
    max_inflated_bytes: int = 100 * MiB  # DOCX: bytes inflated from the ZIP, counted while inflating
    max_zip_entries: int = 5000  # DOCX: entries in the ZIP's directory
    max_text_chars: int = 20_000_000  # characters of text from one document


def normalise_text(text: str) -> str:
    """Text with ``\\n`` line ends and no NUL characters (PostgreSQL's text type refuses them)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def read_text_file(path: Path) -> list[PageText]:
    """A UTF-8 text file as one page (bad bytes replaced, a BOM dropped)."""
    return [PageText(None, normalise_text(path.read_bytes().decode("utf-8-sig", errors="replace")))]


class _WorkerLost(Exception):
    """The worker process ended during a job; ``before_start`` when it never acknowledged the job."""

    def __init__(self, reason: str, *, before_start: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.before_start = before_start


class _Worker:
    """One worker process and the parent's end of its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, memory_bytes: int) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            str(memory_bytes),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT_S):
                ready = await worker._read()
            if not ready.get("ready"):
                raise AILabError(f"the text extraction worker did not start (it said {ready!r})")
        except (TimeoutError, asyncio.IncompleteReadError) as error:
            await asyncio.shield(worker.kill())
            raise AILabError(f"the text extraction worker did not start ({worker._exit_reason()})") from error
        except BaseException:
            await asyncio.shield(worker.kill())  # cancelled while starting: no process is left behind
            raise
        return worker

    async def run(
        self, request: dict[str, Any], on_progress: Callable[[float], None] | None
    ) -> list[PageText]:
        """Sends one job and reads its frames until the answer; raises ``_WorkerLost`` if the process ends."""
        started = False
        try:
            await self._write(request)
            while True:
                frame = await self._read()
                if "started" in frame:
                    started = True
                    if on_progress is not None:
                        on_progress(0.0)  # the document is being read: a caller can show it
                elif "progress" in frame:
                    if on_progress is not None:
                        on_progress(float(frame["progress"]))
                elif "pages" in frame:
                    return [PageText(page, text) for page, text in frame["pages"]]
                else:
                    raise _JobFailed(str(frame["error"]), retire=bool(frame.get("retire")))
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            await self.kill()
            raise _WorkerLost(self._exit_reason(), before_start=not started) from error

    async def _write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        payload = orjson.dumps(message)
        self.process.stdin.write(len(payload).to_bytes(4, "big") + payload)
        await self.process.stdin.drain()

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        size = int.from_bytes(await self.process.stdout.readexactly(4), "big")
        frame: dict[str, Any] = orjson.loads(await self.process.stdout.readexactly(size))
        return frame

    def _exit_reason(self) -> str:
        code = self.process.returncode
        if code is None:
            return "it stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"it was stopped by {signal.Signals(-code).name}"
        return f"it exited with status {code}"

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()

    async def close(self) -> None:
        """Ends the worker politely (end of input), and by force after a grace period."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(_CLOSE_GRACE_S):
                await self.process.wait()
        except TimeoutError:
            await self.kill()


class _JobFailed(Exception):
    """The worker refused the document; ``retire`` when the worker should not be trusted with another."""

    def __init__(self, message: str, *, retire: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retire = retire


class Extractor:
    """Reads the text of uploaded files through a small pool of worker processes.

    Create one per server and ``await aclose()`` at shutdown. Workers start on first use.
    """

    def __init__(self, limits: ExtractionLimits | None = None, *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("an Extractor needs at least one worker")
        self.limits = limits or ExtractionLimits()
        # A slot holds an idle worker, or None where a worker is yet to be started (or was killed).
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        for _ in range(workers):
            self._idle.put_nowait(None)
        self._live: set[_Worker] = set()
        self._closed = False

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers now alive (for monitoring, and for tests that kill one)."""
        return sorted(worker.pid for worker in self._live)

    async def extract(
        self, path: Path, kind: FileKind, *, on_progress: Callable[[float], None] | None = None
    ) -> list[PageText]:
        """The text of the file at ``path``, whose kind ``detect`` decided.

        A PDF gives one entry per page (pages without text included, with ""), numbered from 1; DOCX,
        HTML and text give one entry with page None; an image gives none. ``on_progress`` is called
        with 0.0 when a worker starts on the document, with fractions as pages are read (at most four
        times a second), and with 1.0 at the end. Raises ``ExtractionFailed``.
        """
        if self._closed:
            raise AILabError("the text extractor is closed")
        if kind.family == "image":
            pages: list[PageText] = []
        elif kind.family == "text":
            pages = await asyncio.to_thread(read_text_file, path)
        else:
            pages = await self._in_worker(path, kind, on_progress)
        if on_progress is not None:
            on_progress(1.0)
        return pages

    async def _in_worker(
        self, path: Path, kind: FileKind, on_progress: Callable[[float], None] | None
    ) -> list[PageText]:
        request = {"path": str(path), "family": kind.family, "limits": asdict(self.limits)}
        for attempt in range(2):
            try:
                return await self._run_once(request, on_progress)
            except _WorkerLost as lost:
                if lost.before_start and attempt == 0:
                    continue  # the worker had died while idle: the document is not to blame
                raise ExtractionFailed(
                    f"the reader process stopped while reading the document ({lost.reason}); the file may "
                    f"be malformed, or need more than {self.limits.memory_bytes // MiB} MiB of memory"
                ) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _run_once(
        self, request: dict[str, Any], on_progress: Callable[[float], None] | None
    ) -> list[PageText]:
        worker = await self._idle.get()
        try:
            if worker is None or worker.process.returncode is not None:
                if worker is not None:
                    self._live.discard(worker)
                worker = None  # the slot stays empty if the start fails
                worker = await _Worker.start(self.limits.memory_bytes)
                self._live.add(worker)
            try:
                async with asyncio.timeout(self.limits.timeout_s):
                    return await worker.run(request, on_progress)
            except _JobFailed as failed:
                if failed.retire:
                    await self._retire(worker)
                    worker = None
                raise ExtractionFailed(failed.message) from None
            except TimeoutError:
                await self._retire(worker)
                worker = None
                raise ExtractionFailed(
                    f"the document took longer than {self.limits.timeout_s:g} s to read"
                ) from None
            except BaseException:
                # Lost, cancelled by the caller, or a progress callback that raised: the worker may still
                # be busy with the document, so it cannot take another job.
                await self._retire(worker)
                worker = None
                raise
        finally:
            self._idle.put_nowait(worker)

    async def _retire(self, worker: _Worker) -> None:
        self._live.discard(worker)
        await asyncio.shield(worker.kill())

    async def aclose(self) -> None:
        """Stops every worker; jobs still running fail. The extractor cannot be used afterwards."""
        self._closed = True
        workers, self._live = list(self._live), set()
        await asyncio.gather(*(worker.close() for worker in workers))
