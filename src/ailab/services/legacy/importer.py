"""Importing AI-Lab v2 data (``ai-lab import legacy``): merge, deduplicate, write in whole sessions.

The pipeline: find the files under the paths given (:func:`plan_sources`), read and validate them in a
thread (:func:`read_sources`; bad files become problems and the rest goes on), merge every source of a
session into one list, then write the sessions in chunks, one transaction per chunk.

Identity, and so deduplication, never looks at timestamps (v2's migration re-stamped the messages it
copied into its database):

- a message is ``(session, position in its source, role, content)``. Sources are merged JSON files
  first, then databases, so a message found in both keeps the JSON (original) timestamp; a message
  only the database holds (beyond the JSON file's end, or different at its position) is added after.
- an agent state is ``(session, message, feedback, n)`` where ``n`` counts earlier states of the session
  with the same message and feedback: a state file holds only the session's latest state, so its
  position means nothing. Databases are merged first here, so a matched state takes the database's
  timestamp; a state only a JSON file holds gets the time of the session's last message.
- a performance metric is its v2 row (id, name, raw value, session, raw timestamp).

Each identity's SHA-256 is recorded in ``imported_items`` in the same transaction as the rows, with one
more for the session itself. A re-run therefore adds nothing, a session deleted since its import stays
deleted, and new messages of a session imported before are appended. A chunk holds whole sessions, so a
kill -9 leaves each session either fully imported or not at all, and running again completes the work.
A legacy id held by another user's session is reported and skipped. The originals are only read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import DataError, IntegrityError

from ailab.db.engine import Database
from ailab.db.repos import imports as repo
from ailab.db.repos import users as users_repo
from ailab.db.tables import utcnow
from ailab.services.legacy.formats import (
    LegacyData,
    LegacyMessage,
    LegacyMetric,
    LegacyState,
    Problem,
    ProgressFn,
    map_legacy_role,
    metric_value,
)
from ailab.services.legacy.sources import plan_sources, read_sources

__all__ = ["ImportReport", "LegacyImporter", "Problem", "Tally", "fingerprint", "map_legacy_role"]

LEGACY_AGENT = "legacy"  # agent name of imported v2 states (v2 kept one state per turn, not per agent)
TITLE_LENGTH = 80
MAX_ROWS_PER_CHUNK = 5000
METRICS_PER_CHUNK = 2000


def fingerprint(*parts: Any) -> str:
    """The SHA-256 (hex) identifying an imported item."""
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


@dataclass
class Tally:
    """Items of one kind: imported now, found already imported, skipped."""

    imported: int = 0
    already_present: int = 0
    skipped: int = 0

    def add(self, other: Tally) -> None:
        self.imported += other.imported
        self.already_present += other.already_present
        self.skipped += other.skipped


@dataclass
class ImportReport:
    """What an import did, for the summary table, and what it skipped and why."""

    sessions: Tally = field(default_factory=Tally)
    messages: Tally = field(default_factory=Tally)
    agent_states: Tally = field(default_factory=Tally)
    metrics: Tally = field(default_factory=Tally)
    problems: list[Problem] = field(default_factory=list)
    files_read: int = 0
    api_keys: int = 0  # found in v2 databases; never imported (encrypted with v2's own key file)

    @property
    def skipped_anything(self) -> bool:
        """Whether any file, row or session was skipped (the CLI then exits 1)."""
        tallies = (self.sessions, self.messages, self.agent_states, self.metrics)
        return bool(self.problems) or any(t.skipped for t in tallies)

    def rows(self) -> list[tuple[str, Tally]]:
        """The summary's rows, in display order."""
        return [
            ("sessions", self.sessions),
            ("messages", self.messages),
            ("agent states", self.agent_states),
            ("performance metrics", self.metrics),
        ]

    def _merge(self, other: ImportReport) -> None:
        for (_, mine), (_, theirs) in zip(self.rows(), other.rows(), strict=True):
            mine.add(theirs)
        self.problems.extend(other.problems)


@dataclass
class SessionPlan:
    """One legacy session, merged from all sources: its items with their fingerprints, in order."""

    session_id: str
    fingerprint: str
    messages: list[tuple[str, LegacyMessage]] = field(default_factory=list)
    states: list[tuple[str, LegacyState]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return 1 + len(self.messages) + len(self.states)


def merge_sessions(data: LegacyData) -> list[SessionPlan]:
    """Merge every source's messages and states per session, deduplicated (see the module docstring)."""
    plans: dict[str, SessionPlan] = {}

    def plan_for(session_id: str) -> SessionPlan:
        plan = plans.get(session_id)
        if plan is None:
            plan = plans[session_id] = SessionPlan(session_id, fingerprint("session", session_id))
        return plan

    seen: set[str] = set()
    message_sources = [*data.json_messages, *(item for db in data.databases for item in db.messages.items())]
    for session_id, messages in message_sources:
        plan = plan_for(session_id)
        for message in messages:
            key = fingerprint("message", session_id, message.position, message.role, message.content)
            if key not in seen:
                seen.add(key)
                plan.messages.append((key, message))

    json_states: dict[str, list[LegacyState]] = {}
    for state in data.json_states:
        json_states.setdefault(state.session_id, []).append(state)
    state_sources = [*(item for db in data.databases for item in db.states.items()), *json_states.items()]
    for session_id, states in state_sources:
        plan = plan_for(session_id)
        occurrences: dict[tuple[str, str | None], int] = {}
        for state in states:
            content = (state.message, state.feedback)
            n = occurrences.get(content, 0)
            occurrences[content] = n + 1
            key = fingerprint("agent_state", session_id, state.message, state.feedback, n)
            if key not in seen:
                seen.add(key)
                plan.states.append((key, state))
    return list(plans.values())


def _chunks(plans: Sequence[SessionPlan], batch_size: int) -> Iterator[list[SessionPlan]]:
    chunk: list[SessionPlan] = []
    rows = 0
    for plan in plans:
        if chunk and (len(chunk) >= batch_size or rows + plan.size > MAX_ROWS_PER_CHUNK):
            yield chunk
            chunk, rows = [], 0
        chunk.append(plan)
        rows += plan.size
    if chunk:
        yield chunk


def _title(plan: SessionPlan) -> str:
    """The first line of the first user message, else v2's session name when it had to be changed."""
    for _, message in plan.messages:
        if map_legacy_role(message.role)[0] == "user":
            lines = message.content.strip().splitlines()
            if lines:
                return lines[0][:TITLE_LENGTH]
    names = [m.legacy_name for _, m in plan.messages] + [s.legacy_name for _, s in plan.states]
    return next((name[:TITLE_LENGTH] for name in names if name), "")


def _message_row(session_id: str, seq: int, message: LegacyMessage) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "seq": seq,
        "role": message.role,
        "content": message.content,
        "thought_process": message.thought_process,
        "status": "complete",
        "created_at": message.timestamp,
    }


def _state_row(session_id: str, step: int, state: LegacyState, fallback: dt.datetime) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "step": step,
        "agent": LEGACY_AGENT,
        "input_summary": state.message,
        "output": state.feedback,
        "thought_process": state.thought_process,
        "status": state.status,
        "created_at": state.timestamp or fallback,
    }


def _metric_row(metric: LegacyMetric, now: dt.datetime) -> dict[str, Any]:
    value = metric_value(metric.raw_value)
    extra: dict[str, Any] = {"legacy_id": metric.legacy_id}
    if value is None:
        extra["raw_value"] = metric.raw_value
    return {
        "kind": "legacy",
        "name": metric.name,
        "value": value,
        "ok": True,
        "session_id": metric.session_id,
        "extra": extra,
        "created_at": metric.timestamp or now,
    }


def metric_fingerprint(metric: LegacyMetric) -> str:
    """The identity of a v2 metric row."""
    return fingerprint(
        "metric", metric.legacy_id, metric.name, metric.raw_value, metric.session_id, metric.raw_timestamp
    )


class LegacyImporter:
    """Imports AI-Lab v2 conversations, agent states and performance metrics into one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_user_id(self, name: str) -> str | None:
        """The id of the user called ``name``, or None."""
        async with self._db.read() as session:
            user = await users_repo.get_user_by_name(session, name)
        return None if user is None else user.id

    async def import_paths(
        self,
        paths: Sequence[Path],
        owner_id: str,
        *,
        batch_size: int = 100,
        progress: ProgressFn | None = None,
    ) -> ImportReport:
        """Import everything under ``paths`` for ``owner_id``; idempotent, originals only read.

        ``batch_size`` caps the sessions per transaction; ``progress(phase, done, total)`` is called
        with phase ``"read"`` (files) then ``"import"`` (sessions).
        """
        plan, problems = await asyncio.to_thread(plan_sources, paths)
        data = await asyncio.to_thread(read_sources, plan, progress)
        sessions = await asyncio.to_thread(merge_sessions, data)
        report = ImportReport(
            problems=[*problems, *data.problems], files_read=data.files_read, api_keys=data.api_keys
        )
        report.messages.skipped = data.skipped_messages
        report.agent_states.skipped = data.skipped_states
        report.metrics.skipped = data.skipped_metrics
        done = 0
        for chunk in _chunks(sessions, max(1, batch_size)):
            report._merge(await self._import_chunk(chunk, owner_id))
            done += len(chunk)
            if progress is not None:
                progress("import", done, len(sessions))
        await self._import_metrics(data.metrics, report)
        return report

    async def _import_chunk(self, chunk: list[SessionPlan], owner_id: str) -> ImportReport:
        try:
            return await self._write_sessions(chunk, owner_id)
        except (IntegrityError, DataError):
            pass
        # Someone else wrote one of these sessions meanwhile (or one row is unacceptable): one by one,
        # each re-reading what exists, so the others still go in.
        report = ImportReport()
        for plan in chunk:
            try:
                report._merge(await self._write_sessions([plan], owner_id))
            except (IntegrityError, DataError) as exc:
                report.problems.append(
                    Problem(f"session {plan.session_id}", f"not imported: {str(exc.orig).strip()[:200]}")
                )
                report.sessions.skipped += 1
                report.messages.skipped += len(plan.messages)
                report.agent_states.skipped += len(plan.states)
        return report

    async def _write_sessions(self, chunk: list[SessionPlan], owner_id: str) -> ImportReport:
        """Write whole sessions in one transaction; the returned counts hold only once it committed."""
        report = ImportReport()
        now = utcnow()
        async with self._db.write() as db:
            owners = await repo.session_owners(db, [p.session_id for p in chunk])
            known = await repo.known_fingerprints(db, [p.fingerprint for p in chunk])
            mine = [p for p in chunk if p.session_id in owners and owners[p.session_id] == owner_id]
            item_keys = [key for p in mine for key, _ in (*p.messages, *p.states)]
            known |= await repo.known_fingerprints(db, item_keys)
            new_sessions: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            states: list[dict[str, Any]] = []
            fingerprints: list[dict[str, Any]] = []

            def remember(key: str, kind: str) -> None:
                fingerprints.append({"fingerprint": key, "kind": kind, "created_at": now})

            for plan in chunk:
                exists = plan.session_id in owners
                if exists and owners[plan.session_id] != owner_id:
                    report.problems.append(
                        Problem(f"session {plan.session_id}", "exists already and belongs to another user")
                    )
                    report.sessions.skipped += 1
                    report.messages.skipped += len(plan.messages)
                    report.agent_states.skipped += len(plan.states)
                    continue
                if not exists and plan.fingerprint in known:
                    # Imported before and deleted since: the user's deletion stands.
                    report.sessions.already_present += 1
                    report.messages.already_present += len(plan.messages)
                    report.agent_states.already_present += len(plan.states)
                    continue
                new_messages = [(k, m) for k, m in plan.messages if k not in known]
                new_states = [(k, s) for k, s in plan.states if k not in known]
                times = [m.timestamp for _, m in plan.messages]
                last_time = max(times, default=now)
                if exists:
                    report.sessions.already_present += 1
                    first_seq = (
                        await repo.reserve_seqs(db, plan.session_id, len(new_messages)) if new_messages else 0
                    )
                else:
                    report.sessions.imported += 1
                    first_seq = 0
                    state_times = [s.timestamp for _, s in plan.states if s.timestamp is not None]
                    new_sessions.append(
                        {
                            "id": plan.session_id,
                            "title": _title(plan),
                            "owner_id": owner_id,
                            "next_seq": len(new_messages),
                            "created_at": min(times or state_times or [now]),
                            "updated_at": max([*times, *state_times], default=now),
                        }
                    )
                if plan.fingerprint not in known:
                    remember(plan.fingerprint, "session")
                for offset, (key, message) in enumerate(new_messages):
                    messages.append(_message_row(plan.session_id, first_seq + offset, message))
                    remember(key, "message")
                step = {key: index for index, (key, _) in enumerate(plan.states)}
                for key, state in new_states:
                    states.append(_state_row(plan.session_id, step[key], state, last_time))
                    remember(key, "agent_state")
                report.messages.imported += len(new_messages)
                report.messages.already_present += len(plan.messages) - len(new_messages)
                report.agent_states.imported += len(new_states)
                report.agent_states.already_present += len(plan.states) - len(new_states)
            await repo.insert_sessions(db, new_sessions)
            await repo.insert_messages(db, messages)
            await repo.insert_agent_states(db, states)
            await repo.insert_fingerprints(db, fingerprints)
        return report

    async def _import_metrics(self, metrics: Sequence[LegacyMetric], report: ImportReport) -> None:
        seen: set[str] = set()
        unique: list[tuple[str, LegacyMetric]] = []
        for metric in metrics:
            key = metric_fingerprint(metric)
            if key not in seen:
                seen.add(key)
                unique.append((key, metric))
        for start in range(0, len(unique), METRICS_PER_CHUNK):
            chunk = unique[start : start + METRICS_PER_CHUNK]
            now = utcnow()
            async with self._db.write() as db:
                known = await repo.known_fingerprints(db, [key for key, _ in chunk])
                fresh = [(key, metric) for key, metric in chunk if key not in known]
                await repo.insert_metrics(db, [_metric_row(metric, now) for _, metric in fresh])
                await repo.insert_fingerprints(
                    db, [{"fingerprint": key, "kind": "metric", "created_at": now} for key, _ in fresh]
                )
            report.metrics.imported += len(fresh)
            report.metrics.already_present += len(chunk) - len(fresh)
