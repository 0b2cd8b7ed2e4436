"""The sessions API: sessions, their messages and agent states, export and import."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from ailab.api.deps import CurrentUser, SessionsDep
from ailab.db.tables import ChatSession
from ailab.services.session_export import SessionExport
from ailab.services.sessions import SESSION_ID_PATTERN, agent_state_to_dict, message_to_dict

router = APIRouter(tags=["sessions"])

# Legacy ids look like "1749285836734", "test123" or "test_1749283294"; new ones are UUIDs.
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="a session id")]
MAX_SEQ = 2**63 - 1  # a BIGINT: anything above is no message's seq (and would overflow the query)
ROLE_PATTERN = r"^[A-Za-z][A-Za-z0-9_ -]{0,31}$"


class SessionCreate(BaseModel):
    title: str = Field("", max_length=256)


class SessionUpdate(BaseModel):
    title: str = Field(max_length=256)


class MessageCreate(BaseModel):
    role: str = Field(pattern=ROLE_PATTERN, description="user, assistant, system, or a legacy agent role")
    content: str = Field(max_length=1_000_000)
    thought_process: str | None = None


def session_to_dict(row: ChatSession) -> dict[str, Any]:
    """The public JSON shape of a session."""
    return {
        "id": row.id,
        "title": row.title,
        "message_count": row.next_seq,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@router.post("/sessions", status_code=201)
async def create_session(
    user: CurrentUser, sessions: SessionsDep, body: SessionCreate | None = None
) -> dict[str, Any]:
    """Start a new session with a new, collision-free id."""
    row = await sessions.create(user.id, (body or SessionCreate()).title)
    return session_to_dict(row)


@router.get("/sessions")
async def list_sessions(
    user: CurrentUser,
    sessions: SessionsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """Your sessions, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    page = await sessions.list(user.id, limit, cursor)
    return {"items": [session_to_dict(r) for r in page.items], "next_cursor": page.next_cursor}


@router.post("/sessions/import", status_code=201)
async def import_session(user: CurrentUser, sessions: SessionsDep, document: SessionExport) -> dict[str, Any]:
    """Create a new session from a JSON export (``GET /sessions/{id}/export?format=json``)."""
    return session_to_dict(await sessions.import_json(user.id, document))


@router.get("/sessions/{session_id}")
async def get_session(session_id: SessionId, user: CurrentUser, sessions: SessionsDep) -> dict[str, Any]:
    """One session."""
    return session_to_dict(await sessions.get(user.id, session_id))


@router.patch("/sessions/{session_id}")
async def rename_session(
    session_id: SessionId, body: SessionUpdate, user: CurrentUser, sessions: SessionsDep
) -> dict[str, Any]:
    """Rename a session."""
    return session_to_dict(await sessions.rename(user.id, session_id, body.title))


@router.delete("/sessions/{session_id}", status_code=204)
async def delete_session(session_id: SessionId, user: CurrentUser, sessions: SessionsDep) -> Response:
    """Delete a session with its messages and agent states."""
    await sessions.delete(user.id, session_id)
    return Response(status_code=204)


@router.get("/sessions/{session_id}/messages")
async def list_messages(
    session_id: SessionId,
    user: CurrentUser,
    sessions: SessionsDep,
    after: Annotated[int, Query(ge=-1, le=MAX_SEQ, description="return messages with seq > after")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Messages in order; page with ``after=<last seq>``."""
    rows = await sessions.messages(user.id, session_id, after, limit + 1)
    items = [message_to_dict(m) for m in rows[:limit]]
    next_after = items[-1]["seq"] if len(rows) > limit else None
    return {"items": items, "next_after": next_after}


@router.post("/sessions/{session_id}/messages", status_code=201)
async def append_message(
    session_id: SessionId, body: MessageCreate, user: CurrentUser, sessions: SessionsDep
) -> dict[str, Any]:
    """Append a message at the end of the session."""
    row = await sessions.append(
        user.id, session_id, body.role, body.content, thought_process=body.thought_process
    )
    return message_to_dict(row)


@router.get("/sessions/{session_id}/agent-states")
async def list_agent_states(
    session_id: SessionId, user: CurrentUser, sessions: SessionsDep
) -> dict[str, Any]:
    """The agent steps of the session's pipeline runs, in order."""
    rows = await sessions.agent_states(user.id, session_id)
    return {"items": [agent_state_to_dict(s) for s in rows]}


@router.get("/sessions/{session_id}/export", response_model=None)
async def export_session(
    session_id: SessionId,
    user: CurrentUser,
    sessions: SessionsDep,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",  # noqa: A002 - the contract's name
) -> dict[str, Any] | PlainTextResponse:
    """The session as JSON (re-importable) or Markdown."""
    if format == "markdown":
        text = await sessions.export_markdown(user.id, session_id)
        return PlainTextResponse(
            text,
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="session-{session_id}.md"'},
        )
    return await sessions.export_json(user.id, session_id)
