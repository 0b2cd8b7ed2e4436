"""Chat sessions: create, list, rename, delete, messages, export and import.

Every method takes the owner's id and treats another user's session exactly like a missing one
(:class:`NotFound`), so ids of others cannot be probed.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy.exc import IntegrityError

from ailab.db.engine import Database
from ailab.db.group_commit import GroupCommit
from ailab.db.repos import sessions as repo
from ailab.db.tables import AgentState, ChatSession, Message
from ailab.errors import Conflict, InvalidInput, NotFound
from ailab.ids import time_ordered_id
from ailab.services.sessions.export import EXPORT_FORMAT, SessionExport

# What the API serves as a session id (path parameters, /chat's session_id); everything that stores a
# session keeps to it, or the session could be stored but never read or deleted.
SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def new_session_id() -> str:
    """A collision-free session id, ordered by creation time (:mod:`ailab.ids`)."""
    return time_ordered_id()


class Keyed(Protocol):
    """A row of a newest-first listing: ordered by ``(created_at, id)``."""

    @property
    def created_at(self) -> dt.datetime: ...

    @property
    def id(self) -> str: ...


def encode_cursor(row: Keyed) -> str:
    """An opaque cursor pointing just after ``row`` in a newest-first listing (sessions, files)."""
    raw = orjson.dumps([row.created_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The keyset a cursor stands for; raises NotFound (no such page) on anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, session_id = orjson.loads(raw)
        return dt.datetime.fromisoformat(created), str(session_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise NotFound("no such page: the cursor is not one this server gave") from None


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of a session listing."""

    items: Sequence[ChatSession]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SessionContents:
    """A session with everything stored for it, in order: what its export holds."""

    format: str
    session: ChatSession
    messages: Sequence[Message]
    agent_states: Sequence[AgentState]


class SessionService:
    """Chat sessions of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Appends arrive in bursts (many writers, one database): they share transactions.
        self._appends: GroupCommit[repo.NewMessage, Message | None] = GroupCommit(db, repo.append_many)

    async def create(
        self, owner_id: str | None, title: str = "", session_id: str | None = None
    ) -> ChatSession:
        """Create a session, with a new id unless one is given; raises Conflict if it is taken."""
        try:
            async with self._db.write() as session:
                return await repo.create_session(
                    session, session_id=session_id or new_session_id(), owner_id=owner_id, title=title
                )
        except IntegrityError:
            raise Conflict(f"session {session_id!r} exists already") from None

    async def get_or_create(self, owner_id: str | None, session_id: str | None, title: str) -> ChatSession:
        """The owner's session ``session_id``, created when it does not exist yet (the seed's /chat)."""
        if session_id is None:
            return await self.create(owner_id, title)
        async with self._db.read() as session:
            row = await repo.get_session(session, session_id, owner_id)
            if row is not None:
                return row
            if await repo.session_exists(session, session_id):
                raise NotFound(f"session {session_id!r} not found")
        try:
            return await self.create(owner_id, title, session_id)
        except Conflict:  # created concurrently by the same owner, or taken by another
            return await self.get(owner_id, session_id)

    async def get(self, owner_id: str | None, session_id: str) -> ChatSession:
        """The owner's session, or NotFound."""
        async with self._db.read() as session:
            row = await repo.get_session(session, session_id, owner_id)
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return row

    async def list(
        self, owner_id: str | None, limit: int, cursor: str | None, query: str | None = None
    ) -> SessionPage:
        """A page of the owner's sessions, newest first (with ``query``, those whose title contains it)."""
        after = decode_cursor(cursor) if cursor else None
        title = query.strip() if query else None  # blank: every session
        async with self._db.read() as session:
            rows = await repo.list_sessions(
                session, owner_id, limit=limit + 1, after=after, title_contains=title
            )
        items = rows[:limit]
        next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
        return SessionPage(items=items, next_cursor=next_cursor)

    async def rename(self, owner_id: str | None, session_id: str, title: str) -> ChatSession:
        """Set the title of the owner's session."""
        async with self._db.write() as session:
            row = await repo.get_session(session, session_id, owner_id)
            if row is None:
                raise NotFound(f"session {session_id!r} not found")
            return await repo.rename_session(session, row, title)

    async def delete(self, owner_id: str | None, session_id: str) -> None:
        """Delete the owner's session with its messages and agent states."""
        async with self._db.write() as session:
            if await repo.get_session(session, session_id, owner_id) is None:
                raise NotFound(f"session {session_id!r} not found")
            await repo.delete_session(session, session_id)

    async def append(
        self, owner_id: str | None, session_id: str, role: str, content: str, **fields: Any
    ) -> Message:
        """Append a message to the owner's session; returns once it is committed (with the appends
        that arrived beside it, :class:`~ailab.db.group_commit.GroupCommit`)."""
        row = await self._appends.run(repo.NewMessage(session_id, role, content, owner_id=owner_id, **fields))
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return row

    async def messages(
        self, owner_id: str | None, session_id: str, after_seq: int = -1, limit: int | None = None
    ) -> Sequence[Message]:
        """Messages of the owner's session, in order."""
        async with self._db.read() as session:
            if await repo.get_session(session, session_id, owner_id) is None:
                raise NotFound(f"session {session_id!r} not found")
            return await repo.list_messages(session, session_id, after_seq=after_seq, limit=limit)

    async def agent_states(self, owner_id: str | None, session_id: str) -> Sequence[AgentState]:
        """Agent steps stored for the owner's session."""
        async with self._db.read() as session:
            if await repo.get_session(session, session_id, owner_id) is None:
                raise NotFound(f"session {session_id!r} not found")
            return await repo.list_agent_states(session, session_id)

    # -- export / import ----------------------------------------------------------------------
    async def contents(self, owner_id: str | None, session_id: str) -> SessionContents:
        """The session with all its messages and agent steps (what an export holds)."""
        row = await self.get(owner_id, session_id)
        messages = await self.messages(owner_id, session_id)
        states = await self.agent_states(owner_id, session_id)
        return SessionContents(EXPORT_FORMAT, row, messages, states)

    async def export_markdown(self, owner_id: str | None, session_id: str) -> str:
        """The conversation as a Markdown document."""
        row = await self.get(owner_id, session_id)
        messages = await self.messages(owner_id, session_id)
        lines = [
            f"# {row.title or 'Conversation ' + row.id}",
            "",
            f"Session `{row.id}`, started {row.created_at.isoformat()}.",
            "",
        ]
        for message in messages:
            lines += [f"## {message.role} · {message.created_at.isoformat()}", "", message.content, ""]
            if message.thought_process:
                lines += [
                    "<details><summary>Thought process</summary>",
                    "",
                    message.thought_process,
                    "",
                    "</details>",
                    "",
                ]
        return "\n".join(lines)

    async def import_json(self, owner_id: str | None, document: SessionExport) -> ChatSession:
        """Create a new session (new id) from a validated JSON export; all or nothing."""
        async with self._db.write() as session:
            created = await repo.create_session(
                session, session_id=new_session_id(), owner_id=owner_id, title=document.session.title or ""
            )
            await repo.append_messages(session, created.id, [m.row() for m in document.messages])
            for state in document.agent_states:
                await repo.add_agent_state(session, created.id, **state.row())
        return await self.get(owner_id, created.id)


def _parse_time(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{where}: invalid timestamp {value!r}") from None
