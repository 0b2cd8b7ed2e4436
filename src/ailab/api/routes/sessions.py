"""The sessions API: sessions, their messages and agent states, export and import."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse

from ailab.api.deps import CurrentUser, SessionsDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.sessions import (
    AgentStateList,
    AgentStateOut,
    MessageCreate,
    MessageList,
    MessageOut,
    SessionCreate,
    SessionDocument,
    SessionList,
    SessionOut,
    SessionUpdate,
)
from ailab.services.sessions.export import SessionExport
from ailab.services.sessions.service import SESSION_ID_PATTERN

router = APIRouter(tags=["sessions"], responses=problems(*COMMON_PROBLEMS, 404, 409))

# Legacy ids look like "1749285836734", "test123" or "test_1749283294"; new ones are UUIDs.
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="a session id")]
MAX_SEQ = 2**63 - 1  # a BIGINT: anything above is no message's seq (and would overflow the query)


@router.post("/sessions", status_code=201)
async def create_session(
    user: CurrentUser, sessions: SessionsDep, body: SessionCreate | None = None
) -> SessionOut:
    """Start a new session with a new, collision-free id."""
    row = await sessions.create(user.id, (body or SessionCreate()).title)
    return SessionOut.model_validate(row)


@router.get("/sessions")
async def list_sessions(
    user: CurrentUser,
    sessions: SessionsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    q: Annotated[str | None, Query(max_length=256, description="titles containing this (any case)")] = None,
) -> SessionList:
    """Your sessions, newest first; pass ``next_cursor`` back as ``cursor`` for the next page (with the
    same ``q``)."""
    page = await sessions.list(user.id, limit, cursor, q)
    return SessionList(items=[SessionOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/sessions/import", status_code=201)
async def import_session(user: CurrentUser, sessions: SessionsDep, document: SessionExport) -> SessionOut:
    """Create a new session from a JSON export (``GET /sessions/{id}/export?format=json``)."""
    return SessionOut.model_validate(await sessions.import_json(user.id, document))


@router.get("/sessions/{session_id}")
async def get_session(session_id: SessionId, user: CurrentUser, sessions: SessionsDep) -> SessionOut:
    """One session."""
    return SessionOut.model_validate(await sessions.get(user.id, session_id))


@router.patch("/sessions/{session_id}")
async def rename_session(
    session_id: SessionId, body: SessionUpdate, user: CurrentUser, sessions: SessionsDep
) -> SessionOut:
    """Rename a session."""
    return SessionOut.model_validate(await sessions.rename(user.id, session_id, body.title))


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
) -> MessageList:
    """Messages in order; page with ``after=<last seq>``."""
    rows = await sessions.messages(user.id, session_id, after, limit + 1)
    items = [MessageOut.model_validate(m) for m in rows[:limit]]
    return MessageList(items=items, next_after=items[-1].seq if len(rows) > limit else None)


@router.post("/sessions/{session_id}/messages", status_code=201)
async def append_message(
    session_id: SessionId, body: MessageCreate, user: CurrentUser, sessions: SessionsDep
) -> MessageOut:
    """Append a message at the end of the session."""
    row = await sessions.append(
        user.id, session_id, body.role, body.content, thought_process=body.thought_process
    )
    return MessageOut.model_validate(row)


@router.get("/sessions/{session_id}/agent-states")
async def list_agent_states(
    session_id: SessionId, user: CurrentUser, sessions: SessionsDep
) -> AgentStateList:
    """The agent steps of the session's pipeline runs, in order."""
    rows = await sessions.agent_states(user.id, session_id)
    return AgentStateList(items=[AgentStateOut.model_validate(s) for s in rows])


@router.get(
    "/sessions/{session_id}/export",
    response_model=SessionDocument,
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
)
async def export_session(
    session_id: SessionId,
    user: CurrentUser,
    sessions: SessionsDep,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",  # noqa: A002 - the contract's name
) -> SessionDocument | PlainTextResponse:
    """The session as JSON (re-importable with ``POST /sessions/import``) or Markdown."""
    if format == "markdown":
        text = await sessions.export_markdown(user.id, session_id)
        return PlainTextResponse(
            text,
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="session-{session_id}.md"'},
        )
    return SessionDocument.model_validate(await sessions.contents(user.id, session_id))
