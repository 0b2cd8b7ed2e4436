"""The seed's conversation routes: ``GET/DELETE /conversation/{session_id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ailab.api.deps import CurrentUser, SessionsDep
from ailab.api.routes.sessions import SessionId

router = APIRouter(tags=["conversation"])


@router.get("/conversation/{session_id}")
async def get_conversation(session_id: SessionId, user: CurrentUser, sessions: SessionsDep) -> dict[str, Any]:
    """The session's history in the seed's shape; 404 for an unknown session."""
    rows = await sessions.messages(user.id, session_id)
    return {
        "session_id": session_id,
        "history": [
            {
                "role": m.role,
                "content": m.content,
                "thought_process": m.thought_process,
                "timestamp": m.created_at.isoformat(),
            }
            for m in rows
        ],
    }


@router.delete("/conversation/{session_id}")
async def delete_conversation(
    session_id: SessionId, user: CurrentUser, sessions: SessionsDep
) -> dict[str, str]:
    """Delete the session and its history."""
    await sessions.delete(user.id, session_id)
    return {"status": "success", "message": f"conversation {session_id} deleted"}
