"""Generating AI-Lab v2 data for the import tests: conversation and state files, v2 databases.

The v2 database schema is the one of the real sample (``ai_lab.db`` of AI-Lab v2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

V2_SCHEMA = """
CREATE TABLE conversations (id VARCHAR NOT NULL, session_id VARCHAR, role VARCHAR, content TEXT,
    thought_process TEXT, timestamp DATETIME, PRIMARY KEY (id));
CREATE TABLE agent_states (id INTEGER NOT NULL, session_id VARCHAR, message TEXT, status VARCHAR,
    feedback TEXT, thought_process TEXT, timestamp DATETIME, PRIMARY KEY (id));
CREATE TABLE api_keys (id INTEGER NOT NULL, service_name VARCHAR, encrypted_key BLOB, is_active BOOLEAN,
    created_at DATETIME, updated_at DATETIME, PRIMARY KEY (id));
CREATE TABLE performance_metrics (id INTEGER NOT NULL, metric_name VARCHAR, metric_value VARCHAR,
    session_id VARCHAR, timestamp DATETIME, PRIMARY KEY (id));
"""
BASE_TIME = dt.datetime(2025, 6, 7, 12, 0, 0)
ROLES = ("CEO", "Worker", "QA", "Reflection")


def make_messages(session_index: int, count: int) -> list[dict[str, Any]]:
    """``count`` v2 messages alternating User and an agent, with distinct timestamps."""
    start = BASE_TIME + dt.timedelta(minutes=session_index)
    return [
        {
            "role": "User" if i % 2 == 0 else ROLES[i // 2 % len(ROLES)],
            "content": f"message {i} of session {session_index}",
            "thought_process": None if i % 2 == 0 else f"ANALYZE: step {i}",
            "timestamp": (start + dt.timedelta(seconds=i, microseconds=1234)).isoformat(),
        }
        for i in range(count)
    ]


def write_json(path: Path, document: Any) -> Path:
    """Write ``document`` as v2 did (indented JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def state_for(session_id: str, messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The v2 state file of a session: its last user message and last answer."""
    return {
        "message": messages[-2]["content"] if len(messages) > 1 else messages[-1]["content"],
        "status": "done",
        "feedback": messages[-1]["content"],
        "thought_process": f"ANALYZE: {session_id}",
        "session_id": session_id,
    }


def generate(root: Path, sessions: int, per_session: int, *, states: bool = True) -> list[str]:
    """A v2 folder with ``sessions`` conversation files (and state files); returns the session ids."""
    ids = []
    for index in range(sessions):
        session_id = f"gen_{index:06d}"
        messages = make_messages(index, per_session)
        write_json(root / "conversations" / f"{session_id}.json", messages)
        if states:
            write_json(root / "states" / f"{session_id}.json", state_for(session_id, messages))
        ids.append(session_id)
    return ids


def create_v2_db(
    path: Path,
    conversations: Iterable[tuple[Any, ...]] = (),
    states: Iterable[tuple[Any, ...]] = (),
    metrics: Iterable[tuple[Any, ...]] = (),
    api_keys: int = 0,
) -> Path:
    """A v2 ``ai_lab.db`` holding the given rows (tuples in the tables' column order, id first)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(V2_SCHEMA)
        conn.executemany("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)", conversations)
        conn.executemany("INSERT INTO agent_states VALUES (?, ?, ?, ?, ?, ?, ?)", states)
        conn.executemany("INSERT INTO performance_metrics VALUES (?, ?, ?, ?, ?)", metrics)
        conn.executemany(
            "INSERT INTO api_keys VALUES (?, ?, ?, 1, '2025-06-01', '2025-06-01')",
            [(i, f"service{i}", b"\x00encrypted") for i in range(api_keys)],
        )
    conn.close()
    return path


def migrated_rows(session_id: str, messages: Sequence[dict[str, Any]], at: str) -> list[tuple[Any, ...]]:
    """The rows v2's own migration wrote for a conversation file: same messages, stamped ``at``."""
    return [
        (f"{session_id}_{i}", session_id, m["role"], m["content"], m["thought_process"], at)
        for i, m in enumerate(messages)
    ]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> SHA-256 of its bytes), to prove nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
