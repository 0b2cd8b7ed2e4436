"""A text extraction worker: a process that reads documents for ``Extractor``, one at a time.

Started as ``python -m ailab.services.files.extract_worker <memory bytes>``. It caps its own address
space first (``RLIMIT_AS``), so that a document needing more memory fails here with a MemoryError rather
than taking memory from the server; it then imports the parsers once and answers requests until its
input ends. Frames on stdin/stdout are a 4-byte big-endian length and an orjson object (see
``extract``). Stdout is kept for the frames alone: file descriptor 1 is pointed at stderr, so that
anything a library prints cannot corrupt the protocol.

The parent enforces the wall-clock timeout by killing this process. ``RLIMIT_CPU`` is a backstop for
the case where the parent itself is gone: the soft limit is moved before each job to the CPU time used
so far plus a margin, so that a worker spinning with no parent to kill it is ended by the kernel.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any

import orjson

from ailab.services.files import readers
from ailab.services.files.extract import ExtractionFailed, ExtractionLimits, MiB, PageText

_PROGRESS_INTERVAL_S = 0.25


def _send(out: IO[bytes], message: dict[str, Any]) -> None:
    payload = orjson.dumps(message)
    out.write(len(payload).to_bytes(4, "big") + payload)
    out.flush()


def _receive(source: IO[bytes]) -> dict[str, Any] | None:
    """The next request, or None at the end of input (the parent closed the pipe or went away)."""
    header = source.read(4)
    if len(header) < 4:
        return None
    message: dict[str, Any] = orjson.loads(source.read(int.from_bytes(header, "big")))
    return message


def _allow_cpu_seconds(seconds: float) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(spent + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def read_document(
    path: Path, family: str, limits: ExtractionLimits, out: IO[bytes] | None = None
) -> list[PageText]:
    """Reads one document with the reader for its family, sending progress frames to ``out``."""
    last_sent = time.monotonic()

    def on_page(done: int, total: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if out is not None and total and now - last_sent >= _PROGRESS_INTERVAL_S:
            _send(out, {"progress": done / total})
            last_sent = now

    if family == "pdf":
        return readers.read_pdf(path, limits, on_page)
    if family == "docx":
        return readers.read_docx(path, limits)
    if family == "html":
        return readers.html_to_text(path.read_bytes(), limits)
    raise ExtractionFailed(f"no reader for documents of the {family!r} family")


def _answer(request: dict[str, Any], out: IO[bytes]) -> dict[str, Any]:
    limits = ExtractionLimits(**request["limits"])
    _allow_cpu_seconds(limits.timeout_s + 5)
    try:
        pages = read_document(Path(request["path"]), request["family"], limits, out)
    except ExtractionFailed as failed:
        return {"error": failed.message}
    except MemoryError:
        # The heap may be fragmented or a library left half-way: the parent replaces this worker.
        return {
            "error": f"reading the document needed more than {limits.memory_bytes // MiB} MiB of memory",
            "retire": True,
        }
    except RecursionError:
        return {"error": "the document is nested too deeply to read", "retire": True}
    except OSError as error:
        return {"error": f"the document could not be opened: {error.strerror or error}"}
    except Exception as error:  # noqa: BLE001 (a parser's bug on hostile input must not end the worker)
        return {"error": f"the document could not be read ({type(error).__name__})", "retire": True}
    return {"pages": [[page.page, page.text] for page in pages]}


def main() -> None:
    """Serves requests from stdin until it ends."""
    memory_bytes = int(sys.argv[1])
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own copy of stdout
    os.dup2(2, 1)  # and what libraries print goes to stderr
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")  # pypdf and PDFium warn about every damaged file
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    source = sys.stdin.buffer
    readers.warm_up()
    _send(out, {"ready": True})
    while (request := _receive(source)) is not None:
        _send(out, {"started": True})
        try:
            answer = _answer(request, out)
        except MemoryError:
            answer = {
                "error": "reading the document needed more memory than the worker may use",
                "retire": True,
            }
        _send(out, answer)


if __name__ == "__main__":
    main()
