"""``/usage``: what each user, API token and model used, and budgets.

``GET /usage`` shows a user their own usage and an admin everyone's (``user=`` picks one). Budgets are
set by admins per user (by name) or per API token (by id) and period: ``PUT`` / ``DELETE
/usage/limits/{kind}/{subject}/{period}``; ``GET /usage/limits`` lists them (a user sees those on them
and on their tokens). Past a budget, ``/v1`` answers 429 ``insufficient_quota`` and ``/chat`` 429, both
with ``Retry-After``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from ailab.api.deps import CurrentUser, ServicesDep, require_admin
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.usage import GroupBy, LimitIn, LimitList, LimitOut, Period, SubjectKind, UsageReport

router = APIRouter(tags=["usage"], responses=problems(*COMMON_PROBLEMS, 404))

MAX_HOURS = 24 * 366
Subject = Annotated[
    str, Path(min_length=1, max_length=64, description="a user's name (kind `user`) or an API token's id")
]
LIMIT_PATH = "/usage/limits/{kind}/{subject}/{period}"


@router.get("/usage")
async def usage(
    user: CurrentUser,
    services: ServicesDep,
    group_by: GroupBy = "user",
    hours: Annotated[float, Query(gt=0, le=MAX_HOURS, description="the window, back from now")] = 24,
    user_name: Annotated[
        str | None, Query(alias="user", min_length=1, max_length=64, description="one user's (admins)")
    ] = None,
) -> UsageReport:
    """Requests and tokens per user, API token or model over the last ``hours`` (hourly resolution)."""
    report = await services.usage.report(
        user.id, user.name, is_admin=user.is_admin, group_by=group_by, hours=hours, user=user_name
    )
    return UsageReport.model_validate(report)


@router.get("/usage/limits")
async def list_limits(user: CurrentUser, services: ServicesDep) -> LimitList:
    """Budgets with what is spent of them: all of them (admins), or those on you and your tokens."""
    views = await services.usage.limits(user.id, user.is_admin)
    return LimitList(items=[LimitOut.model_validate(v) for v in views])


@router.put(LIMIT_PATH, dependencies=[Depends(require_admin)])
async def set_limit(
    kind: SubjectKind, subject: Subject, period: Period, body: LimitIn, services: ServicesDep
) -> LimitOut:
    """Set (or replace) a budget (admins): effective at once here, within seconds on other replicas."""
    view = await services.usage.set_limit(kind, subject, period, body.max_requests, body.max_tokens)
    return LimitOut.model_validate(view)


@router.delete(LIMIT_PATH, status_code=204, dependencies=[Depends(require_admin)])
async def delete_limit(
    kind: SubjectKind, subject: Subject, period: Period, services: ServicesDep
) -> Response:
    """Remove a budget (admins)."""
    await services.usage.delete_limit(kind, subject, period)
    return Response(status_code=204)
