"""AI-Lab v2's data: its formats, the records read from them, and the reading of its JSON files.

``database.py`` reads its SQLite file and ``sources.py`` finds and reads everything given. Everything is
synchronous and read-only (the importer runs it in a thread). A source that cannot be
trusted is skipped whole and reported as a :class:`Problem` naming it and the reason; nothing here raises
on bad input.

The v2 formats:

- ``conversations/<session_id>.json``: a JSON list of ``{"role", "content", "thought_process",
  "timestamp"}``. ``thought_process`` is optional (absent reads as null); one bad message skips the
  whole file, since a conversation with a hole in it would renumber every message after it.
- ``states/<session_id>.json``: one ``{"message", "status", "feedback", "thought_process"}`` object,
  sometimes with ``session_id`` (which then wins over the file name); v2 rewrote it after every turn, so
  it holds the session's latest agent state and carries no timestamp.
- ``ai_lab.db``: tables ``conversations``, ``agent_states``, ``api_keys``, ``performance_metrics``. v2's
  own migration copied the JSON messages into ``conversations`` with the migration time as timestamp.
  The database is opened with ``immutable=1`` so SQLite neither locks it nor creates ``-wal``/``-shm``
  files next to it; when a ``-wal`` file exists (a v2 that was still writing), the database and its WAL
  are copied to a temporary folder and read there, so the committed rows in the WAL are not missed.
  Rows are read as bytes and decoded here, so one badly encoded row is reported and skipped alone.

Naive timestamps (v2 wrote them without a zone) are taken as UTC.

Session ids: v2 took them from file names, so they may hold spaces or other characters AI-Lab's API does
not serve (``my chat 1``). Such an id becomes a readable one the API serves, the same every time (so a
re-run finds it again): ``my-chat-1-<8 hex of its sha256>``; the original name is kept as
``legacy_name`` (the session's title when no user message gives one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ailab.services.sessions.service import SESSION_ID_PATTERN

SQLITE_MAGIC = b"SQLite format 3\x00"
# Column widths of our tables (PostgreSQL enforces them; SQLite would not).
MAX_LEGACY_NAME = 1024  # a v2 session id (a file name): longer ones are not v2's
VALID_SESSION_ID = re.compile(SESSION_ID_PATTERN)
MAX_ROLE = 32
MAX_STATUS = 32
MAX_METRIC_NAME = 255
STANDARD_ROLES = frozenset({"user", "assistant", "system", "tool"})

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called as work advances (from the reading thread too)."""


def map_legacy_role(role: str) -> tuple[str, str | None]:
    """The standard chat role for a stored (v2) role, and the agent name it came from.

    v2 stored the speaker: ``User``, ``CEO``, ``Worker``, ``QA``, ``Reflection``, ``Assistant``...
    Imported messages keep that role as written; chat and OpenAI views need one of the standard roles,
    so ``User`` becomes ``("user", None)``, a standard role stays itself, and every agent becomes
    ``("assistant", "<agent>")`` so the view can still say which agent spoke.
    """
    lowered = role.strip().lower()
    if lowered in STANDARD_ROLES:
        return lowered, None
    return "assistant", role


@dataclass(frozen=True, slots=True)
class Problem:
    """Something skipped: where (a path, maybe with a row) and why."""

    where: str
    reason: str


@dataclass(slots=True)
class LegacyMessage:
    """One v2 message; ``position`` is its index in its source's session."""

    session_id: str
    position: int
    role: str
    content: str
    thought_process: str | None
    timestamp: dt.datetime
    legacy_name: str | None = None  # v2's own session id, when it had to be changed


@dataclass(slots=True)
class LegacyState:
    """One v2 agent state; ``timestamp`` is None when it came from a JSON file."""

    session_id: str
    message: str
    status: str
    feedback: str | None
    thought_process: str | None
    timestamp: dt.datetime | None
    legacy_name: str | None = None  # v2's own session id, when it had to be changed


@dataclass(slots=True)
class LegacyMetric:
    """One v2 performance_metrics row, with the raw values that identify it."""

    legacy_id: int | None
    name: str
    raw_value: str | None
    session_id: str | None
    raw_timestamp: str | None
    timestamp: dt.datetime | None


@dataclass
class SourcePlan:
    """The files found under the paths given, by kind, in the order given."""

    conversation_files: list[Path] = field(default_factory=list)
    state_files: list[Path] = field(default_factory=list)
    databases: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.conversation_files) + len(self.state_files) + len(self.databases)


@dataclass
class DatabaseContents:
    """What one v2 database holds, grouped by session, in v2's order."""

    messages: dict[str, list[LegacyMessage]] = field(default_factory=dict)
    states: dict[str, list[LegacyState]] = field(default_factory=dict)
    metrics: list[LegacyMetric] = field(default_factory=list)
    api_keys: int = 0
    skipped_messages: int = 0
    skipped_states: int = 0
    skipped_metrics: int = 0


@dataclass
class LegacyData:
    """Everything read, sources in priority order (JSON files before databases), and the problems."""

    json_messages: list[tuple[str, list[LegacyMessage]]] = field(default_factory=list)
    json_states: list[LegacyState] = field(default_factory=list)
    databases: list[DatabaseContents] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files_read: int = 0
    # Records known to be lost with a skipped file or row (counted where the count is known).
    skipped_messages: int = 0
    skipped_states: int = 0
    skipped_metrics: int = 0

    @property
    def api_keys(self) -> int:
        return sum(db.api_keys for db in self.databases)

    @property
    def metrics(self) -> list[LegacyMetric]:
        return [metric for db in self.databases for metric in db.metrics]


class BadSource(Exception):
    """A file or row that cannot be imported; the message is the reason shown to the user.

    ``items`` is how many records it held, where that is known (the length of a conversation's list).
    """

    def __init__(self, reason: str, items: int = 0) -> None:
        super().__init__(reason)
        self.items = items


# -- finding the files --------------------------------------------------------------------------------
# -- JSON files ---------------------------------------------------------------------------------------
def _load_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadSource(f"cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise BadSource("empty file")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is harmless
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSource(f"bad encoding: not UTF-8 (byte {exc.start})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadSource(f"invalid JSON (truncated?): {exc}") from None


def type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def required_text(value: Any, name: str, *, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise BadSource(f"'{name}' must be a string, not {type_name(value)}")
    if "\x00" in value:
        raise BadSource(f"'{name}' contains a NUL character")
    if max_length is not None and len(value) > max_length:
        raise BadSource(f"'{name}' is longer than {max_length} characters")
    return value


def optional_text(
    value: Any, name: str, *, nullable: bool = False, max_length: int | None = None
) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise BadSource(f"'{name}' must be a string{' or null' if nullable else ''}, not {type_name(value)}")
    return required_text(value, name, max_length=max_length)


def parse_timestamp(value: Any, name: str = "timestamp") -> dt.datetime:
    """An ISO 8601 timestamp (naive ones taken as UTC); raises BadSource otherwise."""
    if not isinstance(value, str):
        raise BadSource(f"'{name}' must be an ISO date string, not {type_name(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadSource(f"'{name}' is not an ISO date: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def session_id_for(name: str) -> str:
    """The id AI-Lab stores for v2's session ``name``: itself when the API serves it, else a stable slug."""
    if VALID_SESSION_ID.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9_.:-]+", "-", name).strip("-_.:")[:100]
    if not slug or not slug[0].isalnum():
        slug = "v2" + (f"-{slug}" if slug else "")
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def session_name(value: str) -> tuple[str, str | None]:
    """(the id to store, v2's name when that differs) for a v2 session id; raises BadSource."""
    if not value.strip() or len(value) > MAX_LEGACY_NAME or "\x00" in value:
        raise BadSource(f"session id {value[:40]!r} is empty or longer than {MAX_LEGACY_NAME} characters")
    session_id = session_id_for(value)
    return session_id, None if session_id == value else value


def valid_session_id(value: str) -> str:
    return session_name(value)[0]


MESSAGE_FIELDS = ("role", "content", "timestamp")  # and "thought_process", optional
STATE_FIELDS = ("message", "status", "feedback")  # and "thought_process", optional


def read_conversation_file(path: Path) -> tuple[str, list[LegacyMessage]]:
    """The session id (from the file name) and messages of a v2 conversation file; raises BadSource."""
    session_id, legacy_name = session_name(path.stem)
    document = _load_json(path)
    if not isinstance(document, list):
        raise BadSource(f"wrong shape: expected a list of messages, found {type_name(document)}")
    messages = []
    for index, item in enumerate(document):
        try:
            if not isinstance(item, dict):
                raise BadSource(f"must be an object, not {type_name(item)}")
            missing = [name for name in MESSAGE_FIELDS if name not in item]
            if missing:
                raise BadSource(f"missing field {', '.join(repr(m) for m in missing)}")
            role = required_text(item["role"], "role", max_length=MAX_ROLE)
            if not role.strip():
                raise BadSource("'role' is empty")
            messages.append(
                LegacyMessage(
                    session_id=session_id,
                    position=index,
                    role=role,
                    content=required_text(item["content"], "content"),
                    thought_process=optional_text(
                        item.get("thought_process"), "thought_process", nullable=True
                    ),
                    timestamp=parse_timestamp(item["timestamp"]),
                    legacy_name=legacy_name,
                )
            )
        except BadSource as exc:
            raise BadSource(f"message {index}: {exc}; file skipped", items=len(document)) from None
    return session_id, messages


def read_state_file(path: Path) -> LegacyState:
    """The agent state in a v2 state file; raises BadSource."""
    document = _load_json(path)
    if not isinstance(document, dict):
        raise BadSource(f"wrong shape: expected an object, found {type_name(document)}")
    missing = [name for name in STATE_FIELDS if name not in document]
    if missing:
        raise BadSource(f"missing field {', '.join(repr(m) for m in missing)}; file skipped")
    named = document.get("session_id")
    if named is not None:
        named = required_text(named, "session_id")
    session_id, legacy_name = session_name(named or path.stem)
    return LegacyState(
        session_id=session_id,
        message=required_text(document["message"], "message"),
        status=required_text(document["status"], "status", max_length=MAX_STATUS),
        feedback=optional_text(document["feedback"], "feedback", nullable=True),
        thought_process=optional_text(document.get("thought_process"), "thought_process", nullable=True),
        timestamp=None,
        legacy_name=legacy_name,
    )


def metric_value(raw: str | None) -> float | None:
    """The numeric value of a v2 metric, or None when it is not a finite number."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
