"""Every operation the app has, walked from its OpenAPI document, refuses anonymous and forged callers.

The walk happens at test time, so routes added later are covered without touching this file. Only the
contract's public routes are exempt.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import jwt
from cryptography.fernet import Fernet

from ailab.services.masterkey import derive_key

PUBLIC_PATHS = {"/", "/auth/login", "/auth/session", "/auth/logout", "/docs", "/openapi.json", "/redoc"}
METHODS = ("get", "post", "put", "patch", "delete")
# Routes every build must have, so the walk cannot pass by finding nothing.
MUST_BE_PROTECTED = {
    ("GET", "/sessions"),
    ("POST", "/sessions"),
    ("GET", "/sessions/{session_id}"),
    ("GET", "/conversation/{session_id}"),
    ("GET", "/auth/me"),
    ("POST", "/auth/tokens"),
    ("GET", "/auth/tokens"),
    ("DELETE", "/auth/tokens/{token_id}"),
    ("GET", "/users"),
    ("POST", "/users"),
    ("PATCH", "/users/{name}"),
    ("DELETE", "/users/{name}"),
}


def is_public(path: str) -> bool:
    """Whether the contract lists ``path`` as public."""
    return path in PUBLIC_PATHS or path == "/health" or path.startswith("/health/")


def dummy_value(parameter: dict[str, Any]) -> str:
    """A well-formed value for a path parameter (so the route matches and only auth can refuse it)."""
    schema = parameter.get("schema", {})
    if schema.get("type") == "integer":
        return "1"
    return "dummy1"


def protected_operations(openapi: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, template, concrete URL) of every non-public operation."""
    operations = []
    for template, item in openapi["paths"].items():
        if is_public(template):
            continue
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            url = template
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path":
                    url = url.replace("{" + parameter["name"] + "}", dummy_value(parameter))
            assert not re.search(r"{\w+}", url), f"unfilled path parameter in {template}"
            operations.append((method.upper(), template, url))
    return operations


def forged_credentials() -> dict[str, str]:
    """Bearer values that look right but must be refused."""
    now = int(time.time())
    other_key = derive_key(Fernet.generate_key().decode(), "ailab access tokens")
    forged_jwt = jwt.encode({"sub": "anyone", "iat": now, "exp": now + 3600}, other_key, algorithm="HS256")
    unsigned = jwt.encode({"sub": "anyone", "iat": now, "exp": now + 3600}, "", algorithm="none")
    return {
        "forged JWT": forged_jwt,
        "unsigned JWT": unsigned,
        "random API token": "ailab_" + secrets.token_urlsafe(32),
        "garbage": "not-a-token",
    }


async def send(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return await client.request(method, url, headers=headers, **body)


def assert_refused(response: httpx.Response, method: str, url: str, how: str) -> None:
    assert response.status_code == 401, f"{method} {url} with {how}: {response.status_code} {response.text}"
    body = response.json()
    if url.startswith("/v1/"):
        assert body["error"]["type"] == "authentication_error", body
    else:
        assert isinstance(body["detail"], str), body
    assert response.headers["www-authenticate"] == "Bearer"


async def test_every_non_public_operation_needs_credentials(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    openapi = client.app.openapi()  # type: ignore[attr-defined]
    operations = protected_operations(openapi)
    templates = {(method, template) for method, template, _ in operations}
    assert templates >= MUST_BE_PROTECTED, MUST_BE_PROTECTED - templates

    forged = forged_credentials()
    for method, _, url in operations:
        assert_refused(await send(anon, method, url, {}), method, url, "no credentials")
        assert_refused(
            await send(anon, method, url, {"Authorization": "Basic YWRtaW46YWRtaW4="}), method, url, "Basic"
        )
        for how, value in forged.items():
            response = await send(anon, method, url, {"Authorization": f"Bearer {value}"})
            assert_refused(response, method, url, how)


async def test_public_routes_answer_without_credentials(anon: httpx.AsyncClient) -> None:
    for path in ("/", "/health", "/health/live", "/health/ready", "/openapi.json", "/docs"):
        response = await anon.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"


async def test_a_valid_token_passes_the_same_walk(client: httpx.AsyncClient) -> None:
    """The control: the admin's real token is never refused with 401 on those operations."""
    openapi = client.app.openapi()  # type: ignore[attr-defined]
    for method, template, url in protected_operations(openapi):
        if method != "GET" or "{" in template:
            continue  # reads without ids only: they cannot change or start anything
        response = await client.get(url)
        assert response.status_code != 401, f"GET {url}: {response.text}"
