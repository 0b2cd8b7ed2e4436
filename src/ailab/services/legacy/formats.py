"""Reading AI-Lab v2 data: conversation and state JSON files and the v2 SQLite database.

Everything here is synchronous and read-only (the importer runs it in a thread). A source that cannot be
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
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
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
def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file())


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def plan_sources(paths: Sequence[Path]) -> tuple[SourcePlan, list[Problem]]:
    """Sort the paths given into conversation files, state files and databases.

    A folder is a v2 root when it holds ``conversations/``, ``states/`` or ``ai_lab.db``; otherwise its
    ``*.json`` files are conversations (state files when the folder is named ``states``). A file is a
    database when it starts with SQLite's header, a JSON file otherwise (a state file when its folder is
    named ``states``). The same file named twice is read once.
    """
    plan = SourcePlan()
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(target: list[Path], path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            target.append(path)

    for path in paths:
        try:
            if path.is_dir():
                found: list[tuple[list[Path], Path]] = []
                conversations, states, database = path / "conversations", path / "states", path / "ai_lab.db"
                if conversations.is_dir() or states.is_dir() or database.is_file():
                    for folder, target in (
                        (conversations, plan.conversation_files),
                        (states, plan.state_files),
                    ):
                        if folder.is_dir():
                            found += [(target, file) for file in _json_files(folder)]
                    if database.is_file():
                        found.append((plan.databases, database))
                else:
                    target = plan.state_files if path.name == "states" else plan.conversation_files
                    found += [(target, file) for file in _json_files(path)]
                if not found:
                    problems.append(Problem(str(path), "no AI-Lab v2 data found in this folder"))
                for target, file in found:
                    add(target, file)
            elif path.is_file():
                if _is_sqlite(path):
                    add(plan.databases, path)
                elif path.parent.name == "states":
                    add(plan.state_files, path)
                else:
                    add(plan.conversation_files, path)
            else:
                problems.append(Problem(str(path), "no such file or folder"))
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot be read: {exc.strerror or exc}"))
    return plan, problems


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


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _required_text(value: Any, name: str, *, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise BadSource(f"'{name}' must be a string, not {_type_name(value)}")
    if "\x00" in value:
        raise BadSource(f"'{name}' contains a NUL character")
    if max_length is not None and len(value) > max_length:
        raise BadSource(f"'{name}' is longer than {max_length} characters")
    return value


def _text(value: Any, name: str, *, nullable: bool = False, max_length: int | None = None) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise BadSource(f"'{name}' must be a string{' or null' if nullable else ''}, not {_type_name(value)}")
    return _required_text(value, name, max_length=max_length)


def parse_timestamp(value: Any, name: str = "timestamp") -> dt.datetime:
    """An ISO 8601 timestamp (naive ones taken as UTC); raises BadSource otherwise."""
    if not isinstance(value, str):
        raise BadSource(f"'{name}' must be an ISO date string, not {_type_name(value)}")
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


def _session(value: str) -> tuple[str, str | None]:
    """(the id to store, v2's name when that differs) for a v2 session id; raises BadSource."""
    if not value.strip() or len(value) > MAX_LEGACY_NAME or "\x00" in value:
        raise BadSource(f"session id {value[:40]!r} is empty or longer than {MAX_LEGACY_NAME} characters")
    session_id = session_id_for(value)
    return session_id, None if session_id == value else value


def _session_id(value: str) -> str:
    return _session(value)[0]


def _session_of(raw: Any) -> tuple[str, str | None]:
    """:func:`_session` of a raw database value."""
    return _session(_required_text(_decode(raw, "session_id"), "session_id"))


MESSAGE_FIELDS = ("role", "content", "timestamp")  # and "thought_process", optional
STATE_FIELDS = ("message", "status", "feedback")  # and "thought_process", optional


def read_conversation_file(path: Path) -> tuple[str, list[LegacyMessage]]:
    """The session id (from the file name) and messages of a v2 conversation file; raises BadSource."""
    session_id, legacy_name = _session(path.stem)
    document = _load_json(path)
    if not isinstance(document, list):
        raise BadSource(f"wrong shape: expected a list of messages, found {_type_name(document)}")
    messages = []
    for index, item in enumerate(document):
        try:
            if not isinstance(item, dict):
                raise BadSource(f"must be an object, not {_type_name(item)}")
            missing = [name for name in MESSAGE_FIELDS if name not in item]
            if missing:
                raise BadSource(f"missing field {', '.join(repr(m) for m in missing)}")
            role = _required_text(item["role"], "role", max_length=MAX_ROLE)
            if not role.strip():
                raise BadSource("'role' is empty")
            messages.append(
                LegacyMessage(
                    session_id=session_id,
                    position=index,
                    role=role,
                    content=_required_text(item["content"], "content"),
                    thought_process=_text(item.get("thought_process"), "thought_process", nullable=True),
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
        raise BadSource(f"wrong shape: expected an object, found {_type_name(document)}")
    missing = [name for name in STATE_FIELDS if name not in document]
    if missing:
        raise BadSource(f"missing field {', '.join(repr(m) for m in missing)}; file skipped")
    named = document.get("session_id")
    if named is not None:
        named = _required_text(named, "session_id")
    session_id, legacy_name = _session(named or path.stem)
    return LegacyState(
        session_id=session_id,
        message=_required_text(document["message"], "message"),
        status=_required_text(document["status"], "status", max_length=MAX_STATUS),
        feedback=_text(document["feedback"], "feedback", nullable=True),
        thought_process=_text(document.get("thought_process"), "thought_process", nullable=True),
        timestamp=None,
        legacy_name=legacy_name,
    )


# -- the v2 database ----------------------------------------------------------------------------------
def _decode(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadSource(f"'{name}' is not valid UTF-8") from None
    return str(value)


_TABLE_COLUMNS = {
    "conversations": ("rowid", "session_id", "role", "content", "thought_process", "timestamp"),
    "agent_states": ("id", "session_id", "message", "status", "feedback", "thought_process", "timestamp"),
    "performance_metrics": ("id", "metric_name", "metric_value", "session_id", "timestamp"),
}
_ORDER = {
    # v2 listed a conversation by timestamp; rowid keeps insertion order among equal timestamps.
    "conversations": "session_id, timestamp, rowid",
    "agent_states": "id",
    "performance_metrics": "id",
}


def _open_readonly(path: Path, scratch: Path) -> sqlite3.Connection:
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        copy = scratch / "v2.db"
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        conn = sqlite3.connect(copy)
    else:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    conn.text_factory = bytes
    return conn


def _rows(conn: sqlite3.Connection, table: str, tables: set[str]) -> list[tuple[Any, ...]]:
    if table not in tables:
        return []
    present = {row[1].decode() for row in conn.execute(f"PRAGMA table_info({table})")}
    missing = [c for c in _TABLE_COLUMNS[table] if c != "rowid" and c not in present]
    if missing:
        raise BadSource(f"table {table} lacks column(s) {', '.join(missing)}")
    columns = ", ".join(_TABLE_COLUMNS[table])
    return conn.execute(f"SELECT {columns} FROM {table} ORDER BY {_ORDER[table]}").fetchall()  # noqa: S608


def read_database(path: Path) -> tuple[DatabaseContents, list[Problem]]:
    """Read a v2 SQLite database without changing, locking or adding any file; raises BadSource."""
    contents = DatabaseContents()
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="ailab-v2-") as scratch:
        try:
            conn = _open_readonly(path, Path(scratch))
        except (sqlite3.Error, OSError) as exc:
            raise BadSource(f"cannot be opened as a SQLite database: {exc}") from None
        try:
            tables = {_decode(r[0], "name") or "" for r in conn.execute("SELECT name FROM sqlite_master")}
            if not tables & {"conversations", "agent_states", "performance_metrics", "api_keys"}:
                raise BadSource("not an AI-Lab v2 database (none of its tables found)")
            _read_messages(path, _rows(conn, "conversations", tables), contents, problems)
            _read_states(path, _rows(conn, "agent_states", tables), contents, problems)
            _read_metrics(path, _rows(conn, "performance_metrics", tables), contents, problems)
            if "api_keys" in tables:
                contents.api_keys = int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])
        except sqlite3.Error as exc:
            raise BadSource(f"cannot be read as a SQLite database: {exc}") from None
        finally:
            conn.close()
    return contents, problems


def _read_messages(
    path: Path, rows: list[tuple[Any, ...]], contents: DatabaseContents, problems: list[Problem]
) -> None:
    positions: dict[str, int] = {}
    for rowid, raw_session, raw_role, raw_content, raw_thought, raw_time in rows:
        where = f"{path} (conversations row {rowid})"
        try:
            session_id, legacy_name = _session(
                _required_text(_decode(raw_session, "session_id"), "session_id")
            )
        except BadSource as exc:
            problems.append(Problem(where, str(exc)))
            continue
        # The position counts every row of the session, so a bad row does not shift those after it.
        position = positions.get(session_id, 0)
        positions[session_id] = position + 1
        try:
            role = _required_text(_decode(raw_role, "role"), "role", max_length=MAX_ROLE)
            if not role.strip():
                raise BadSource("'role' is empty")
            message = LegacyMessage(
                session_id=session_id,
                position=position,
                role=role,
                content=_required_text(_decode(raw_content, "content"), "content"),
                thought_process=_text(
                    _decode(raw_thought, "thought_process"), "thought_process", nullable=True
                ),
                timestamp=parse_timestamp(_decode(raw_time, "timestamp")),
                legacy_name=legacy_name,
            )
        except BadSource as exc:
            problems.append(Problem(where, str(exc)))
            contents.skipped_messages += 1
            continue
        contents.messages.setdefault(session_id, []).append(message)


def _read_states(
    path: Path, rows: list[tuple[Any, ...]], contents: DatabaseContents, problems: list[Problem]
) -> None:
    for row_id, raw_session, raw_message, raw_status, raw_feedback, raw_thought, raw_time in rows:
        try:
            session_id, legacy_name = _session(
                _required_text(_decode(raw_session, "session_id"), "session_id")
            )
            state = LegacyState(
                session_id=session_id,
                legacy_name=legacy_name,
                message=_required_text(_decode(raw_message, "message"), "message"),
                status=_required_text(_decode(raw_status, "status"), "status", max_length=MAX_STATUS),
                feedback=_text(_decode(raw_feedback, "feedback"), "feedback", nullable=True),
                thought_process=_text(
                    _decode(raw_thought, "thought_process"), "thought_process", nullable=True
                ),
                timestamp=parse_timestamp(_decode(raw_time, "timestamp")),
            )
        except BadSource as exc:
            problems.append(Problem(f"{path} (agent_states row {row_id})", str(exc)))
            contents.skipped_states += 1
            continue
        contents.states.setdefault(state.session_id, []).append(state)


def _read_metrics(
    path: Path, rows: list[tuple[Any, ...]], contents: DatabaseContents, problems: list[Problem]
) -> None:
    for row_id, raw_name, raw_value, raw_session, raw_time in rows:
        try:
            raw_timestamp = _decode(raw_time, "timestamp")
            session_id = _text(_decode(raw_session, "session_id"), "session_id", nullable=True)
            if session_id is not None:
                session_id = _session_id(session_id)
            metric = LegacyMetric(
                legacy_id=row_id if isinstance(row_id, int) else None,
                name=_required_text(
                    _decode(raw_name, "metric_name"), "metric_name", max_length=MAX_METRIC_NAME
                ),
                raw_value=_text(_decode(raw_value, "metric_value"), "metric_value", nullable=True),
                session_id=session_id,
                raw_timestamp=raw_timestamp,
                timestamp=None if raw_timestamp is None else parse_timestamp(raw_timestamp),
            )
        except BadSource as exc:
            problems.append(Problem(f"{path} (performance_metrics row {row_id})", str(exc)))
            contents.skipped_metrics += 1
            continue
        contents.metrics.append(metric)


def metric_value(raw: str | None) -> float | None:
    """The numeric value of a v2 metric, or None when it is not a finite number."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# -- everything ---------------------------------------------------------------------------------------
def read_sources(plan: SourcePlan, progress: ProgressFn | None = None) -> LegacyData:
    """Read every planned source; bad ones become problems, the rest is returned."""
    data = LegacyData()
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("read", done, plan.total)

    for path in plan.conversation_files:
        try:
            data.json_messages.append(read_conversation_file(path))
            data.files_read += 1
        except BadSource as exc:
            data.problems.append(Problem(str(path), str(exc)))
            data.skipped_messages += exc.items
        step()
    for path in plan.state_files:
        try:
            data.json_states.append(read_state_file(path))
            data.files_read += 1
        except BadSource as exc:
            data.problems.append(Problem(str(path), str(exc)))
            data.skipped_states += 1
        step()
    for path in plan.databases:
        try:
            contents, problems = read_database(path)
            data.databases.append(contents)
            data.problems.extend(problems)
            data.skipped_messages += contents.skipped_messages
            data.skipped_states += contents.skipped_states
            data.skipped_metrics += contents.skipped_metrics
            data.files_read += 1
        except BadSource as exc:
            data.problems.append(Problem(str(path), str(exc)))
        step()
    return data
