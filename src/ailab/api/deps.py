"""Typed dependencies for the routes: the services, the database and the current user.

Every route that is not public is mounted under a router whose dependency is :func:`require_user`, so
protection is the router's default and a new route cannot forget it. Handlers that need to know who is
calling take ``CurrentUser``; FastAPI computes it once per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from ailab.config import Settings
from ailab.errors import AuthError, Forbidden
from ailab.services.auth.accounts import Principal
from ailab.services.container import Services
from ailab.services.sessions.service import SessionService
from ailab.services.usage.attribution import attribute

SESSION_COOKIE = "ailab_session"  # a signed-in browser's session (httpOnly, SameSite=Strict)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPE = "application/json"
_bearer = HTTPBearer(auto_error=False, description="An access token from /auth/login or an API token")


async def get_services(request: Request) -> Services:
    """The services of this process."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


async def get_sessions(services: ServicesDep) -> SessionService:
    return services.sessions


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionsDep = Annotated[SessionService, Depends(get_sessions)]


async def authenticate(services: Services, scheme: str | None, credential: str | None) -> Principal:
    """Who an ``Authorization: <scheme> <credential>`` header stands for; raises AuthError."""
    if services.settings.auth == "off":
        return await services.auth.local_admin()
    if not scheme or scheme.lower() != "bearer" or not credential:
        raise AuthError("missing bearer credentials")
    return await services.auth.authenticate(credential)


async def authenticate_caller(
    services: Services,
    method: str,
    scheme: str | None,
    credential: str | None,
    *,
    cookie: str | None,
    content_type: str | None,
    requested_with: bool = False,
) -> Principal:
    """Who a request stands for: its ``Authorization`` header, else its browser session cookie. The one
    place that decides, for the routers' dependency and for the fast lane alike.

    A request that changes something with the cookie must be JSON, or (an upload) carry
    ``X-Requested-With``: another site's page can make a browser send its cookie with a form or a simple
    request, never with ``Content-Type: application/json`` or a custom header (both need a CORS
    preflight this server does not grant), so this refuses cross-site request forgery.
    """
    if scheme is None and cookie and services.settings.auth == "on":
        media_type = (content_type or "").partition(";")[0].strip().lower()
        if method not in SAFE_METHODS and media_type != JSON_TYPE and not requested_with:
            raise Forbidden(
                "a change made with the session cookie must be sent as application/json "
                "(an upload: with the header X-Requested-With)"
            )
        principal = await services.auth.authenticate(cookie)
    else:
        principal = await authenticate(services, scheme, credential)
    attribute(principal)  # what this request generates is charged to its caller (services/usage)
    return principal


async def authenticate_request(
    services: Services, request: Request, scheme: str | None, credential: str | None
) -> Principal:
    """:func:`authenticate_caller` for a request whose ``Authorization`` header was read already."""
    if scheme is not None:  # the header decides: the cookie and the CSRF check's headers go unread
        return await authenticate_caller(
            services, request.method, scheme, credential, cookie=None, content_type=None
        )
    return await authenticate_caller(
        services,
        request.method,
        scheme,
        credential,
        cookie=request.cookies.get(SESSION_COOKIE),
        content_type=request.headers.get("content-type"),
        requested_with="x-requested-with" in request.headers,
    )


async def require_user(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller (:func:`authenticate_caller`); 401 without valid credentials (the admin
    when auth is off)."""
    if credentials is None:
        return await authenticate_request(services, request, None, None)
    return await authenticate_request(services, request, credentials.scheme, credentials.credentials)


CurrentUser = Annotated[Principal, Depends(require_user)]


async def optional_user(request: Request, services: ServicesDep) -> Principal | None:
    """The authenticated caller, or None where :func:`require_user` would answer 401.

    Reads the header itself rather than through the bearer scheme, so the route's document does not
    claim that it needs credentials (it answers everyone).
    """
    scheme, credential = get_authorization_scheme_param(request.headers.get("authorization"))
    try:
        return await authenticate_request(services, request, scheme or None, credential or None)
    except AuthError:
        return None


MaybeUser = Annotated[Principal | None, Depends(optional_user)]


async def require_admin(user: CurrentUser) -> Principal:
    """The caller, who must be an admin (403 otherwise)."""
    if not user.is_admin:
        raise Forbidden("this needs the admin role")
    return user


AdminUser = Annotated[Principal, Depends(require_admin)]
