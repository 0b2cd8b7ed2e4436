"""``/usage``: usage per user, API token and model, and the budgets that limit it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ailab.api.schemas.common import Out, Timestamp

GroupBy = Literal["user", "token", "model"]
SubjectKind = Literal["user", "token"]
Period = Literal["hour", "day", "month"]
MAX_BUDGET = 2**62  # fits the BIGINT columns


class UsageItem(Out):
    """One group's usage. The fields of the grouping are set (``user``: ``user`` and ``user_id``;
    ``token``: the token and its owner; ``model``: ``model``), the others null. A ``token`` of null
    groups what was asked with an access token or a browser session, not an API token."""

    user: str | None = Field(description="the user's name (null: none, or a user deleted since)")
    user_id: str | None
    token: str | None = Field(validation_alias="token_id", description="the API token's id")
    token_name: str | None
    model: str | None = Field(description="`provider/model`")
    requests: int = Field(description="generations: a /v1 call is one, an agents turn one per step")
    prompt_tokens: int
    completion_tokens: int


class UsageReport(Out):
    """Usage since ``since`` (the start of the hour ``hours`` ago, UTC), largest first."""

    group_by: GroupBy
    hours: float
    since: Timestamp
    items: list[UsageItem]


class LimitIn(BaseModel):
    """A budget: at most so many requests and/or tokens (prompt and completion) per period."""

    model_config = ConfigDict(
        # At least one bound (the JSON Schema says so too, for clients and fuzzers).
        json_schema_extra={
            "anyOf": [
                {"required": ["max_requests"], "properties": {"max_requests": {"type": "integer"}}},
                {"required": ["max_tokens"], "properties": {"max_tokens": {"type": "integer"}}},
            ]
        }
    )

    max_requests: int | None = Field(None, ge=1, le=MAX_BUDGET, description="generations per period")
    max_tokens: int | None = Field(None, ge=1, le=MAX_BUDGET, description="prompt + completion tokens")


class LimitOut(Out):
    """A budget and what is spent of it in the current period (up to a second or so behind)."""

    kind: SubjectKind
    id: str = Field(validation_alias="subject_id", description="the user's id or the API token's")
    name: str | None = Field(description="the user's name or the API token's (null: deleted since)")
    owner: str | None = Field(description="the user it applies to: the user, or the token's owner")
    period: Period
    max_requests: int | None
    max_tokens: int | None
    used_requests: int
    used_tokens: int
    resets_at: Timestamp = Field(description="when the current period ends and the budget renews")


class LimitList(BaseModel):
    items: list[LimitOut]
