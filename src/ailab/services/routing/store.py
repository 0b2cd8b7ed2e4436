"""The models file (``AILAB_MODELS_FILE``): read, noticed when it changes, rewritten atomically.

The file is the one source of the aliases: every replica that shares the data dir reads it, and the
admin API writes it, so an edit on one replica reaches the others when they next look (once a second).
A change is noticed by its :data:`Stamp` (modification time in ns, size, inode): a rename over the file,
as :meth:`ModelsFile.write` does, always changes the inode.

Writes are read-modify-write under an exclusive ``flock`` of ``<file>.lock`` (replicas on one host, or
on a file system with working locks, do not lose each other's edits), then a temporary file in the same
folder, flushed and renamed over the old one: a reader sees the old file or the new one, never half of
one. The API rewrites the whole file, so comments in a hand-edited file are not kept. Blocking I/O: the
service calls these in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ailab.config import ConfigError
from ailab.services.routing.config import AliasSpec

Stamp = tuple[int, int, int]  # (mtime_ns, size, inode) of the file


def _entries(data: Any) -> list[Any]:
    if not isinstance(data, dict) or set(data) - {"aliases"}:
        raise ValueError("expected a mapping with the key 'aliases'")
    section = data.get("aliases")
    if section is None:
        return []
    if isinstance(section, dict):  # aliases: {fast: {...}} is accepted as well as a list
        section = [{"name": name, **(value or {})} for name, value in section.items()]
    if not isinstance(section, list) or not all(isinstance(item, dict) for item in section):
        raise ValueError("'aliases' must be a list of mappings, each with a name")
    return section


def _problem(exc: ValidationError, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"alias {name!r}" if isinstance(name, str) else "an alias"
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    return f"{where}: {loc + ': ' if loc else ''}{first['msg']}"


def parse(text: str) -> list[AliasSpec]:
    """The aliases of a models file's text; ValueError saying what is wrong (the first problem)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    if data is None:
        return []
    specs: list[AliasSpec] = []
    for entry in _entries(data):
        try:
            specs.append(AliasSpec.model_validate(entry))
        except ValidationError as exc:
            raise ValueError(_problem(exc, entry)) from None
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"alias {twice[0]!r} is defined twice")
    return specs


def dump(specs: list[AliasSpec]) -> str:
    """The file's text for ``specs``."""
    header = (
        "# Model aliases (AILAB_MODELS_FILE): written by AI-Lab's admin API; edits by hand are read too.\n"
    )
    body = yaml.safe_dump({"aliases": [spec.as_yaml() for spec in specs]}, sort_keys=False)
    return header + body


class ModelsFile:
    """The models file at ``path`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stamp(self) -> Stamp | None:
        """What identifies the file's current content, or None when there is no file."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def read(self) -> tuple[Stamp | None, list[AliasSpec]]:
        """The file's stamp and aliases (none without a file); ConfigError naming the file and the
        problem when it cannot be read or is not valid."""
        stamp = self.stamp()
        if stamp is None:
            return None, []
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, []
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read the model aliases: {exc}") from None
        try:
            return stamp, parse(text)
        except ValueError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's write lock (``<file>.lock``), across processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def write(self, specs: list[AliasSpec]) -> Stamp | None:
        """Replace the file with ``specs`` atomically (call under :meth:`locked`); its new stamp."""
        text = dump(specs)
        mode = 0o644
        with contextlib.suppress(FileNotFoundError):
            mode = self.path.stat().st_mode & 0o777
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        return self.stamp()
