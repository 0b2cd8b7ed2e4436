"""Where uploaded bytes live: ``<data dir>/uploads/<file id>``, written through a temporary file.

An upload is written to ``uploads/.incoming/<random>`` while it arrives (counted, hashed, its first bytes
kept for sniffing), flushed to disk, and renamed to its id only once accepted; its database row is
inserted after that. So a row never points at missing bytes, and what a crash leaves behind (an
incoming file, bytes whose row was never written or was deleted) has no row: :meth:`BlobStore.sweep`
removes it at the next start.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from ailab.errors import TooLarge

INCOMING = ".incoming"
STALE_INCOMING_SECONDS = 3600.0  # an incoming file this old belongs to no live upload
# Bytes are renamed to their id a moment before their row is inserted (by any replica sharing the
# folder): bytes younger than this may still get their row, so a sweep leaves them.
SWEEP_MIN_AGE_SECONDS = 60.0


def human_size(count: int) -> str:
    """A byte count as people read it: 25 MiB, 1.5 KiB, 900 bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} bytes"


class Incoming:
    """An upload being received: bytes counted against the limit as they come, hashed, the head kept.

    Use it as a context manager: leaving it with an exception removes the file.
    """

    def __init__(self, path: Path, limit: int, head_bytes: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.head = bytearray()
        self._head_bytes = head_bytes
        self._hash = hashlib.sha256()
        self._file: BinaryIO | None = None

    def __enter__(self) -> Incoming:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if exc_type is not None:
            self.discard()

    def write(self, data: bytes) -> None:
        """Append ``data``; raises :class:`TooLarge` past the limit (the caller stops reading then)."""
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(
                f"the file is larger than {human_size(self.limit)}, "
                "this server's limit (AILAB_MAX_UPLOAD_BYTES)"
            )
        if len(self.head) < self._head_bytes:
            self.head += data[: self._head_bytes - len(self.head)]
        self._hash.update(data)
        assert self._file is not None, "write() outside the context"
        self._file.write(data)

    def finish(self) -> str:
        """Flush the bytes to disk (an acknowledged upload survives a crash); returns their sha256."""
        assert self._file is not None, "finish() outside the context"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Remove the file (a refused upload leaves no bytes behind)."""
        self.path.unlink(missing_ok=True)


class BlobStore:
    """The uploads folder of the data dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / INCOMING

    def ensure(self) -> None:
        """Create the folders (mode 0700: uploads are private)."""
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)

    def receive(self, limit: int, head_bytes: int) -> Incoming:
        """A new incoming upload (enter it as a context manager)."""
        self.ensure()  # a command-line upload may be the first use of this data dir
        return Incoming(self.incoming / uuid.uuid4().hex, limit, head_bytes)

    def path(self, file_id: str) -> Path:
        """Where a stored file's bytes are (ids are generated, never taken from a client)."""
        return self.root / file_id

    def keep(self, incoming: Incoming, file_id: str) -> Path:
        """Move an accepted upload to its id (same folder tree: an atomic rename) and sync the folder."""
        target = self.path(file_id)
        os.replace(incoming.path, target)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return target

    def remove(self, file_id: str) -> None:
        """Remove a file's bytes (no error when they are gone already)."""
        self.path(file_id).unlink(missing_ok=True)

    def stored_ids(self) -> list[str]:
        """The ids that have bytes here."""
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")]

    def sweep(self, known_ids: set[str]) -> int:
        """Remove bytes whose row is gone (a deleted user's, a crash's) and incoming files left by a
        crash; returns how many."""
        removed = 0
        settled = time.time() - SWEEP_MIN_AGE_SECONDS
        for file_id in self.stored_ids():
            if file_id not in known_ids and self.path(file_id).stat().st_mtime < settled:
                self.remove(file_id)
                removed += 1
        if self.incoming.is_dir():
            cutoff = time.time() - STALE_INCOMING_SECONDS
            for leftover in self.incoming.iterdir():
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed
