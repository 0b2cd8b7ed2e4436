"""Reading the v2 SQLite database (``ai_lab.db``), read-only and without locking it (see ``formats.py``)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from ailab.services.legacy.formats import (
    MAX_METRIC_NAME,
    MAX_ROLE,
    MAX_STATUS,
    BadSource,
    DatabaseContents,
    LegacyMessage,
    LegacyMetric,
    LegacyState,
    Problem,
    optional_text,
    parse_timestamp,
    required_text,
    session_name,
    valid_session_id,
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
            session_id, legacy_name = session_name(
                required_text(_decode(raw_session, "session_id"), "session_id")
            )
        except BadSource as exc:
            problems.append(Problem(where, str(exc)))
            continue
        # The position counts every row of the session, so a bad row does not shift those after it.
        position = positions.get(session_id, 0)
        positions[session_id] = position + 1
        try:
            role = required_text(_decode(raw_role, "role"), "role", max_length=MAX_ROLE)
            if not role.strip():
                raise BadSource("'role' is empty")
            message = LegacyMessage(
                session_id=session_id,
                position=position,
                role=role,
                content=required_text(_decode(raw_content, "content"), "content"),
                thought_process=optional_text(
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
            session_id, legacy_name = session_name(
                required_text(_decode(raw_session, "session_id"), "session_id")
            )
            state = LegacyState(
                session_id=session_id,
                legacy_name=legacy_name,
                message=required_text(_decode(raw_message, "message"), "message"),
                status=required_text(_decode(raw_status, "status"), "status", max_length=MAX_STATUS),
                feedback=optional_text(_decode(raw_feedback, "feedback"), "feedback", nullable=True),
                thought_process=optional_text(
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
            session_id = optional_text(_decode(raw_session, "session_id"), "session_id", nullable=True)
            if session_id is not None:
                session_id = valid_session_id(session_id)
            metric = LegacyMetric(
                legacy_id=row_id if isinstance(row_id, int) else None,
                name=required_text(
                    _decode(raw_name, "metric_name"), "metric_name", max_length=MAX_METRIC_NAME
                ),
                raw_value=optional_text(_decode(raw_value, "metric_value"), "metric_value", nullable=True),
                session_id=session_id,
                raw_timestamp=raw_timestamp,
                timestamp=None if raw_timestamp is None else parse_timestamp(raw_timestamp),
            )
        except BadSource as exc:
            problems.append(Problem(f"{path} (performance_metrics row {row_id})", str(exc)))
            contents.skipped_metrics += 1
            continue
        contents.metrics.append(metric)


def session_of(raw: Any) -> tuple[str, str | None]:
    """:func:`session_name` of a raw database value."""
    return session_name(required_text(_decode(raw, "session_id"), "session_id"))
