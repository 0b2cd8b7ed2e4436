"""The seed's conversation routes: ``GET/DELETE /conversation/{session_id}``."""

from __future__ import annotations

from fastapi import APIRouter

from ailab.api.deps import CurrentUser, SessionsDep
from ailab.api.routes.sessions import SessionId
from ailab.api.schemas.common import COMMON_PROBLEMS, Done, problems
from ailab.api.schemas.sessions import Conversation, ConversationEntry

router = APIRouter(tags=["conversation"], responses=problems(*COMMON_PROBLEMS, 404))


@router.get("/conversation/{session_id}")
async def get_conversation(session_id: SessionId, user: CurrentUser, sessions: SessionsDep) -> Conversation:
    """The session's history in the seed's shape; 404 for an unknown session."""
    rows = await sessions.messages(user.id, session_id)
    return Conversation(session_id=session_id, history=[ConversationEntry.model_validate(m) for m in rows])


@router.delete("/conversation/{session_id}")
async def delete_conversation(session_id: SessionId, user: CurrentUser, sessions: SessionsDep) -> Done:
    """Delete the session and its history."""
    await sessions.delete(user.id, session_id)
    return Done(message=f"conversation {session_id} deleted")
