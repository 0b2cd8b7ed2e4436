"""The real AI-Lab v2 sample: exact counts, timestamps, agent states, dedup, originals untouched.

Expected numbers, counted from the sample itself (sqlite3 and the JSON files):

- conversations/: 21 files, 57 messages in all (15 files of 1-2 messages, 1749287048106, 1749287588962 and
  test123 with 4 each, test_1749283294 with 22, test_session with 1).
- ai_lab.db ``conversations``: 59 rows. 57 are v2's own migration of those files (same session, order, role
  and content, but stamped 2025-06-11 07:55:12-13, the migration time); the other 2 are session
  1749629565482 (User + Assistant), which has no JSON file. -> 22 sessions, 59 messages.
- states/: 9 files, each equal (message, status, feedback, thought_process) to one of ai_lab.db
  ``agent_states`` rows 1-9; row 10 belongs to 1749629565482. -> 10 agent states, one per session.
- ai_lab.db ``performance_metrics``: 36 rows; ``api_keys``: 0 rows.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select

from ailab.db.engine import Database
from ailab.db.tables import AgentState, ChatSession, Message, PerformanceMetric
from ailab.services.legacy.importer import LegacyImporter, map_legacy_role
from tests.importer.helpers import add_user, counts, tally
from tests.importer.v2data import snapshot

EXPECTED_FIRST = {
    "sessions": (22, 0, 0),
    "messages": (59, 0, 0),
    "agent states": (10, 0, 0),
    "performance metrics": (36, 0, 0),
}
EXPECTED_AGAIN = {name: (0, imported, 0) for name, (imported, _, _) in EXPECTED_FIRST.items()}
# Rows: the above, plus one fingerprint per session, message, agent state and metric.
EXPECTED_ROWS = {"sessions": 22, "messages": 59, "agent_states": 10, "metrics": 36, "fingerprints": 127}
SESSIONS_WITH_STATES = {
    "1749285836734",
    "1749285836794",
    "1749286429645",
    "1749287048106",
    "1749287588962",
    "1749360586943",
    "1749545075736",
    "test123",
    "test_1749283294",
    "1749629565482",
}


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


async def test_counts_after_one_import_and_after_a_second(db: Database, owner: str, sample: Path) -> None:
    before = snapshot(sample)
    importer = LegacyImporter(db)

    first = await importer.import_paths([sample], owner)
    assert tally(first) == EXPECTED_FIRST
    assert first.problems == []
    assert not first.skipped_anything
    assert first.api_keys == 0
    assert await counts(db) == EXPECTED_ROWS

    again = await importer.import_paths([sample], owner)
    assert tally(again) == EXPECTED_AGAIN
    assert await counts(db) == EXPECTED_ROWS

    # Byte-identical, and no -wal/-shm/-journal or any other file appeared.
    assert snapshot(sample) == before


async def test_original_timestamps_order_and_roles_kept(db: Database, owner: str, sample: Path) -> None:
    await LegacyImporter(db).import_paths([sample], owner)
    async with db.read() as session:
        rows = (await session.scalars(select(Message).order_by(Message.session_id, Message.seq))).all()
        sessions = {s.id: s for s in (await session.scalars(select(ChatSession))).all()}

    by_session: dict[str, list[Message]] = {}
    for row in rows:
        by_session.setdefault(row.session_id, []).append(row)
    assert set(sessions) == set(by_session)
    assert all(s.owner_id == owner for s in sessions.values())

    # Every JSON message is stored once, in file order, with its JSON timestamp (not the DB's 2025-06-11).
    files = sorted((sample / "conversations").glob("*.json"))
    assert len(files) == 21
    for file in files:
        original = json.loads(file.read_text(encoding="utf-8"))
        stored = by_session[file.stem]
        assert [(m.seq, m.role, m.content, m.thought_process, m.created_at) for m in stored] == [
            (i, m["role"], m["content"], m["thought_process"], utc(m["timestamp"]))
            for i, m in enumerate(original)
        ]
        assert sessions[file.stem].next_seq == len(original)

    # Concrete messages, written out.
    agents = by_session["test_1749283294"]
    assert [m.role for m in agents[5:10]] == ["CEO", "Worker", "Reflection", "CEO", "Reflection"]
    assert agents[6].created_at == utc("2025-06-07T12:01:51.340833")
    assert by_session["1749040405151"][0].created_at == utc("2025-06-04T16:33:32.429185")
    assert sessions["1749040405151"].created_at == utc("2025-06-04T16:33:32.429185")

    # The session only the database holds keeps the database's timestamps and roles.
    only_db = by_session["1749629565482"]
    assert [(m.role, m.created_at) for m in only_db] == [
        ("User", utc("2025-06-11 08:12:56.441336")),
        ("Assistant", utc("2025-06-11 08:15:05.915621")),
    ]
    assert only_db[1].content.startswith(" Hello! It's a pleasure")


async def test_agent_states_attached_to_their_sessions(db: Database, owner: str, sample: Path) -> None:
    await LegacyImporter(db).import_paths([sample], owner)
    async with db.read() as session:
        states = (await session.scalars(select(AgentState).order_by(AgentState.session_id))).all()

    assert {s.session_id for s in states} == SESSIONS_WITH_STATES
    assert len(states) == len(SESSIONS_WITH_STATES)  # one each: JSON and DB copies merged
    by_session = {s.session_id: s for s in states}
    for file in sorted((sample / "states").glob("*.json")):
        original = json.loads(file.read_text(encoding="utf-8"))
        state = by_session[original["session_id"]]
        assert (state.input_summary, state.status, state.output, state.thought_process) == (
            original["message"],
            original["status"],
            original["feedback"],
            original["thought_process"],
        )
    # JSON states carry no time: the matching database row's is taken.
    assert by_session["test123"].created_at == utc("2025-06-11 07:55:13.285603")
    assert by_session["1749629565482"].created_at == utc("2025-06-11 08:15:05.902539")


async def test_performance_metrics(db: Database, owner: str, sample: Path) -> None:
    await LegacyImporter(db).import_paths([sample], owner)
    async with db.read() as session:
        metrics = (await session.scalars(select(PerformanceMetric).order_by(PerformanceMetric.id))).all()
    assert len(metrics) == 36
    assert {m.kind for m in metrics} == {"legacy"}
    first = metrics[0]
    assert (first.name, first.value, first.created_at) == (
        "cpu_usage_percent",
        18.0,
        utc("2025-06-11 07:58:22.092032"),
    )
    duration = [m for m in metrics if m.name == "chat_endpoint_duration"]
    assert len(duration) == 1
    assert duration[0].value is not None
    assert abs(duration[0].value - 129.51591181755066) < 1e-9


async def test_database_then_json_in_separate_runs_dedups(db: Database, owner: str, sample: Path) -> None:
    importer = LegacyImporter(db)
    json_only = await importer.import_paths([sample / "conversations", sample / "states"], owner)
    assert tally(json_only) == {
        "sessions": (21, 0, 0),
        "messages": (57, 0, 0),
        "agent states": (9, 0, 0),
        "performance metrics": (0, 0, 0),
    }
    db_only = await importer.import_paths([sample / "ai_lab.db"], owner)
    # The 57 migrated copies and the 9 state rows are recognised (position, role, content), not duplicated.
    assert tally(db_only) == {
        "sessions": (1, 21, 0),
        "messages": (2, 57, 0),
        "agent states": (1, 9, 0),
        "performance metrics": (36, 0, 0),
    }
    assert await counts(db) == EXPECTED_ROWS
    async with db.read() as session:
        stored = (await session.scalars(select(Message).where(Message.session_id == "test123"))).all()
    original = json.loads((sample / "conversations" / "test123.json").read_text(encoding="utf-8"))
    assert sorted(m.created_at for m in stored) == [utc(m["timestamp"]) for m in original]


async def test_session_of_another_user_is_reported_and_skipped(
    db: Database, owner: str, sample: Path
) -> None:
    bob = await add_user(db, "bob")
    async with db.write() as session:
        session.add(ChatSession(id="test123", owner_id=bob, title="bob's own"))

    report = await LegacyImporter(db).import_paths([sample], owner)

    assert tally(report)["sessions"] == (21, 0, 1)
    assert tally(report)["messages"] == (55, 0, 4)
    assert [(p.where, p.reason) for p in report.problems] == [
        ("session test123", "exists already and belongs to another user")
    ]
    assert report.skipped_anything
    async with db.read() as session:
        theirs = await session.get(ChatSession, "test123")
        assert theirs is not None
        assert (theirs.owner_id, theirs.title, theirs.next_seq) == (bob, "bob's own", 0)
        assert (await session.scalars(select(Message).where(Message.session_id == "test123"))).all() == []


def test_role_mapping_for_chat_views() -> None:
    assert map_legacy_role("User") == ("user", None)
    assert map_legacy_role("user") == ("user", None)
    assert map_legacy_role("Assistant") == ("assistant", None)
    assert map_legacy_role("CEO") == ("assistant", "CEO")
    assert map_legacy_role("Reflection") == ("assistant", "Reflection")
    assert map_legacy_role("QA") == ("assistant", "QA")
