"""Typed dependencies for the routes: the services, the database and the current user.

Every route that is not public is mounted under a router whose dependency is :func:`require_user`, so
protection is the router's default and a new route cannot forget it. Handlers that need to know who is
calling take ``CurrentUser``; FastAPI computes it once per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ailab.config import Settings
from ailab.errors import AuthError, Forbidden
from ailab.services.auth.accounts import Principal
from ailab.services.container import Services
from ailab.services.sessions.service import SessionService

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
    """Who an ``Authorization: <scheme> <credential>`` header stands for; raises AuthError.

    The one place that decides, for the routers' dependency and for the gateway's fast lane alike.
    """
    if services.settings.auth == "off":
        return await services.auth.local_admin()
    if not scheme or scheme.lower() != "bearer" or not credential:
        raise AuthError("missing bearer credentials")
    return await services.auth.authenticate(credential)


async def authenticate_cookie(
    services: Services, method: str, content_type: str | None, cookie: str
) -> Principal:
    """Who a browser session cookie stands for (when no Authorization header came).

    A request that changes something must be JSON: another site's page can make a browser send its
    cookie with a form or a simple request, never with ``Content-Type: application/json`` (that needs
    a CORS preflight this server does not grant), so this refuses cross-site request forgery.
    """
    if services.settings.auth == "off":
        return await services.auth.local_admin()
    if method not in SAFE_METHODS and (content_type or "").partition(";")[0].strip().lower() != JSON_TYPE:
        raise Forbidden("a change made with the session cookie must be sent as application/json")
    return await services.auth.authenticate(cookie)


async def require_user(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller: a bearer credential, else the browser session cookie; 401 without
    valid credentials (the admin when auth is off)."""
    if credentials is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await authenticate_cookie(
                services, request.method, request.headers.get("content-type"), cookie
            )
        return await authenticate(services, None, None)
    return await authenticate(services, credentials.scheme, credentials.credentials)


CurrentUser = Annotated[Principal, Depends(require_user)]


async def require_admin(user: CurrentUser) -> Principal:
    """The caller, who must be an admin (403 otherwise)."""
    if not user.is_admin:
        raise Forbidden("this needs the admin role")
    return user


AdminUser = Annotated[Principal, Depends(require_admin)]
