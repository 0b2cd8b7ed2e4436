"""``ai-lab import legacy`` as a real process on generated inputs with every kind of bad file.

Each bad file is named in the report with its reason and skipped; the rest is imported; the exit code
is 1; the originals stay byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from ailab.db.engine import Database
from ailab.db.tables import ChatSession, Message, PerformanceMetric
from tests.importer.helpers import counts, run_cli, summary
from tests.importer.v2data import create_v2_db, make_messages, migrated_rows, snapshot, state_for, write_json

pytestmark = pytest.mark.slow  # starts server or CLI processes

MIGRATED_AT = "2025-06-11 07:55:12.000001"


def build_v2_folder(root: Path) -> Path:
    """A v2 folder with good and bad conversation and state files, and a v2 database."""
    conv, states = root / "conversations", root / "states"
    good_a, good_b = make_messages(0, 3), make_messages(1, 2)
    write_json(conv / "good_a.json", good_a)
    write_json(conv / "good_b.json", good_b)
    write_json(states / "good_a.json", state_for("good_a", good_a))

    text = json.dumps(make_messages(2, 4), indent=2)
    (conv / "truncated.json").write_text(text[: len(text) // 2], encoding="utf-8")
    (conv / "empty.json").write_bytes(b"")
    write_json(conv / "wrong_shape.json", make_messages(3, 1)[0])  # one object, not a list
    latin = json.dumps([{**make_messages(4, 1)[0], "content": "café"}], ensure_ascii=False)
    (conv / "bad_encoding.json").write_bytes(latin.encode("latin-1"))
    missing = make_messages(5, 3)
    del missing[1]["content"]
    write_json(conv / "missing_field.json", missing)
    malformed = make_messages(6, 2)
    malformed[1]["timestamp"] = "yesterday"
    write_json(conv / "malformed_field.json", malformed)
    wrong_type = make_messages(7, 2)
    wrong_type[0]["role"] = 42
    write_json(conv / "wrong_type.json", wrong_type)
    write_json(states / "list_state.json", [state_for("list_state", good_b)])
    no_feedback = state_for("no_feedback", good_b)
    del no_feedback["feedback"]
    write_json(states / "no_feedback.json", no_feedback)

    good_c = make_messages(8, 2)
    create_v2_db(
        root / "ai_lab.db",
        conversations=[
            *migrated_rows("good_a", good_a, MIGRATED_AT),  # v2's migration copies: deduplicated
            *migrated_rows("good_c", good_c, MIGRATED_AT),  # only in the database
            ("bad_0", "bad_row", None, "a row without a role", None, MIGRATED_AT),
            ("bad_1", "bad_row", "User", "the good row after it", None, MIGRATED_AT),
        ],
        states=[(1, "good_a", *list(state_for("good_a", good_a).values())[:4], MIGRATED_AT)],
        metrics=[
            (1, "cpu_usage_percent", "18.5", None, "2025-06-11 07:58:22.092032"),
            (2, "gpu_name", "n/a", None, "2025-06-11 07:58:22.100000"),
            (3, "chat_endpoint_duration", "129.5", "good_c", "2025-06-11 08:15:05.954226"),
        ],
        api_keys=2,
    )
    return root


async def test_bad_files_are_reported_and_skipped_and_the_rest_imported(
    tmp_path: Path, any_database_url: str, cli_env: Callable[[str], dict[str, str]]
) -> None:
    inputs = tmp_path / "inputs"
    folder = build_v2_folder(inputs / "v2")
    broken_db = inputs / "broken.db"
    broken_db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    before = snapshot(inputs)
    env = cli_env(any_database_url)

    result = run_cli(env, str(folder), str(broken_db), str(inputs / "missing"), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    expected_reasons = {
        "truncated.json": "invalid JSON",
        "empty.json": "empty file",
        "wrong_shape.json": "wrong shape: expected a list of messages, found an object",
        "bad_encoding.json": "bad encoding: not UTF-8",
        "missing_field.json": "message 1: missing field 'content'; file skipped",
        "malformed_field.json": "message 1: 'timestamp' is not an ISO date: 'yesterday'; file skipped",
        "wrong_type.json": "message 0: 'role' must be a string, not int; file skipped",
        "list_state.json": "wrong shape: expected an object, found a list",
        "no_feedback.json": "missing field 'feedback'",
        "broken.db": "cannot be read as a SQLite database",
        "missing": "no such file or folder",
        "ai_lab.db (conversations row 6)": "'role' must be a string, not null",
    }
    for name, reason in expected_reasons.items():
        lines = [line for line in out.splitlines() if name in line and reason in line]
        assert len(lines) == 1, f"{name}: {reason!r} not reported in:\n{out}"
    assert f"skipped ({len(expected_reasons)}):" in out
    # Skipped records, where countable: 3 + 2 + 2 messages in the bad lists, 1 bad database row;
    # 2 bad state files.
    assert summary(out) == {
        "sessions": ["4", "0", "0"],
        "messages": ["8", "0", "8"],
        "agent states": ["1", "0", "2"],
        "performance metrics": ["3", "0", "0"],
    }
    assert "api keys: not imported" in out
    assert "ai-lab keys set" in out
    assert "importing sessions" not in out  # no progress bar when stdout is not a terminal

    db = Database(any_database_url)
    try:
        async with db.read() as session:
            ids = set((await session.scalars(select(ChatSession.id))).all())
            bad_row = (await session.scalars(select(Message).where(Message.session_id == "bad_row"))).all()
            metrics = {m.name: m for m in (await session.scalars(select(PerformanceMetric))).all()}
        assert ids == {"good_a", "good_b", "good_c", "bad_row"}
        # The bad row is skipped; the row after it keeps its place (position 1) and is imported.
        assert [(m.seq, m.content) for m in bad_row] == [(0, "the good row after it")]
        assert metrics["gpu_name"].value is None
        assert metrics["gpu_name"].extra["raw_value"] == "n/a"
        assert metrics["cpu_usage_percent"].value == 18.5
        assert metrics["chat_endpoint_duration"].session_id == "good_c"
        first = await counts(db)
        assert first == {
            "sessions": 4,
            "messages": 3 + 2 + 2 + 1,
            "agent_states": 1,
            "metrics": 3,
            "fingerprints": 4 + 8 + 1 + 3,
        }

        again = run_cli(env, str(folder), str(broken_db), str(inputs / "missing"), cwd=tmp_path)
        assert again.returncode == 1  # the bad files are still there, and still reported
        assert await counts(db) == first
    finally:
        await db.close()
    assert snapshot(inputs) == before


async def test_clean_input_exits_0_and_reports_the_counts(
    tmp_path: Path, database_url: str, cli_env: Callable[[str], dict[str, str]]
) -> None:
    folder = tmp_path / "v2" / "conversations"
    write_json(folder / "one.json", make_messages(0, 3))
    write_json(folder / "two.json", make_messages(1, 4))

    result = run_cli(cli_env(database_url), str(folder), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(result.stdout) == {
        "sessions": ["2", "0", "0"],
        "messages": ["7", "0", "0"],
        "agent states": ["0", "0", "0"],
        "performance metrics": ["0", "0", "0"],
    }
    assert "skipped (" not in result.stdout

    again = run_cli(cli_env(database_url), str(folder), cwd=tmp_path)
    assert again.returncode == 0
    assert summary(again.stdout)["messages"] == ["0", "7", "0"]
    assert summary(again.stdout)["sessions"] == ["0", "2", "0"]


async def test_unknown_user_is_a_clean_error(
    tmp_path: Path, database_url: str, cli_env: Callable[[str], dict[str, str]]
) -> None:
    folder = tmp_path / "conversations"
    write_json(folder / "one.json", make_messages(0, 1))

    result = run_cli(cli_env(database_url), str(folder), "--user", "nobody", cwd=tmp_path)

    assert result.returncode == 1
    assert "no user 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr
    db = Database(database_url)
    try:
        assert (await counts(db))["sessions"] == 0
    finally:
        await db.close()
