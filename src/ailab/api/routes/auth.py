"""Login and the caller's own account: ``POST /auth/login``, the browser session ``/auth/session`` and
``/auth/logout`` (public), ``/auth/me`` and ``/auth/tokens``.

``router`` holds the public login; ``protected_router`` the routes that need a signed-in caller. API
tokens are listed without their secret, which is shown once, in the answer that creates it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from ailab.api.deps import SESSION_COOKIE, CurrentUser, MaybeUser, ServicesDep
from ailab.api.schemas.auth import (
    ApiTokenList,
    ApiTokenOut,
    CreatedToken,
    LoginRequest,
    Me,
    SessionState,
    TokenCreate,
    TokenResponse,
)
from ailab.api.schemas.common import COMMON_PROBLEMS, problems

router = APIRouter(tags=["auth"], responses=problems(*COMMON_PROBLEMS))
protected_router = APIRouter(tags=["auth"], responses=problems(*COMMON_PROBLEMS, 404))

TokenId = Annotated[str, Path(max_length=64, description="an API token id")]


@router.post("/auth/login")
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> TokenResponse:
    """A signed access token for ``Authorization: Bearer``.

    401 on a wrong name or password; 429 with ``Retry-After`` after repeated failures for the name or
    from the address.
    """
    address = request.client.host if request.client else None
    token = await services.auth.login(body.username, body.password, address)
    return TokenResponse(access_token=token, expires_in=services.settings.access_token_ttl_seconds)


@router.post("/auth/session", responses=problems(401, 429))
async def open_session(body: LoginRequest, request: Request, response: Response, services: ServicesDep) -> Me:
    """Sign a browser in: the session is an httpOnly, SameSite=Strict cookie that the server accepts
    beside bearer credentials (a change made with it must be sent as JSON). 401 and 429 as ``/auth/login``."""
    address = request.client.host if request.client else None
    token, user = await services.auth.open_browser_session(body.username, body.password, address)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=services.settings.access_token_ttl_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return Me.model_validate(user)


@router.get("/auth/session")
async def session_state(user: MaybeUser, services: ServicesDep) -> SessionState:
    """Who the caller is signed in as, or ``{"user": null}``: what a page asks first, without a 401
    when nobody is signed in yet."""
    if user is None:
        return SessionState(user=None)
    return SessionState(user=Me.model_validate(await services.auth.get_user(user.name)))


@router.post("/auth/logout", status_code=204)
async def close_session(request: Request, services: ServicesDep) -> Response:
    """Sign a browser out: its session ends on the server at once and its cookie is cleared."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await services.auth.close_browser_session(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@protected_router.get("/auth/me")
async def me(user: CurrentUser, services: ServicesDep) -> Me:
    """Who you are signed in as."""
    return Me.model_validate(await services.auth.get_user(user.name))


@protected_router.post("/auth/tokens", status_code=201)
async def create_token(body: TokenCreate, user: CurrentUser, services: ServicesDep) -> CreatedToken:
    """A new API token for you; ``token`` is shown in this answer only (store it now)."""
    plaintext, row = await services.auth.create_api_token(user.name, body.name)
    return CreatedToken(id=row.id, name=row.name, token=plaintext, created_at=row.created_at)


@protected_router.get("/auth/tokens")
async def list_tokens(user: CurrentUser, services: ServicesDep) -> ApiTokenList:
    """Your API tokens, oldest first, revoked ones included; never their secret."""
    rows = await services.auth.list_api_tokens(user.id)
    return ApiTokenList(items=[ApiTokenOut.model_validate(token) for token, _ in rows])


@protected_router.delete("/auth/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: TokenId, user: CurrentUser, services: ServicesDep) -> Response:
    """Revoke one of your API tokens; refused at once. Another user's token answers 404."""
    await services.auth.revoke_api_token(token_id, user.id)
    return Response(status_code=204)
