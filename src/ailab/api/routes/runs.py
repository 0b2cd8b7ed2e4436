"""``/runs``: follow, replay and cancel a ``/chat`` turn from any connection (and any replica).

Only the run's owner or an admin sees a run; for anyone else it does not exist (404).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, event_stream, problems
from ailab.api.schemas.runs import RunList, RunOut, RunStatus
from ailab.api.sse import DirectStreamResponse
from ailab.services.sessions.service import SESSION_ID_PATTERN

router = APIRouter(tags=["runs"], responses=problems(*COMMON_PROBLEMS, 404))

RunId = Annotated[str, Path(max_length=64, description="a run id (`X-Run-Id` of its `/chat`)")]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="a session id")]
EVENTS_DOC = (
    "Server-Sent Events: the run's events from the start, or those after `Last-Event-ID`, each with its "
    "`id:`; then the live ones as they come, up to `data: [DONE]`."
)


@router.get("/runs/{run_id}")
async def get_run(run_id: RunId, user: CurrentUser, services: ServicesDep) -> RunOut:
    """A run's status."""
    return RunOut.model_validate(await services.runs.get(user.id, user.is_admin, run_id))


@router.get("/runs/{run_id}/events", response_model=None, responses={200: event_stream(EVENTS_DOC)})
async def run_events(
    run_id: RunId,
    user: CurrentUser,
    services: ServicesDep,
    last_event_id: Annotated[int, Header(ge=0, le=2**31 - 1, description="the last event you have")] = 0,
) -> DirectStreamResponse:
    """Replay a run's events and follow it to its end; a finished run's come from its stored answer
    once they are no longer kept."""
    run = await services.runs.get(user.id, user.is_admin, run_id)
    return DirectStreamResponse(await services.runs.events(run, last_event_id), headers={"X-Run-Id": run.id})


@router.post("/runs/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: RunId, user: CurrentUser, services: ServicesDep) -> RunOut:
    """Stop a run wherever it executes; what it produced is stored, marked cancelled. Answers once it
    has stopped (a run that has ended already is returned as it is)."""
    run = await services.runs.get(user.id, user.is_admin, run_id)
    return RunOut.model_validate(await services.runs.cancel(run))


@router.get("/sessions/{session_id}/runs")
async def list_runs(
    session_id: SessionId,
    user: CurrentUser,
    services: ServicesDep,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunList:
    """A session's runs, newest first (``status=running``: those in progress)."""
    rows = await services.runs.list(user.id, user.is_admin, session_id, status, limit)
    return RunList(items=[RunOut.model_validate(row) for row in rows])
