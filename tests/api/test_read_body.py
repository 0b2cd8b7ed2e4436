"""``read_body``: the fast lane's read of a request body, as Starlette's ``Request.body()`` reads it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from ailab.api.middleware import read_body

SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}


def messages(*sent: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` giving ``sent`` in order (and failing the test if asked for more)."""
    pending = list(sent)

    async def receive() -> dict[str, Any]:
        assert pending, "read past the last message"
        return pending.pop(0)

    return receive


def part(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


@pytest.mark.parametrize(
    "sent",
    [
        [part(b'{"model": "x"}', False)],  # the usual: one message
        [part(b'{"model"', True), part(b"", True), part(b': "x"}', False)],  # chunked, an empty piece
        [{"type": "http.request"}],  # no body at all
    ],
)
async def test_the_body_is_what_starlette_reads(sent: list[dict[str, Any]]) -> None:
    assert await read_body(messages(*sent)) == await Request(SCOPE, messages(*sent)).body()


@pytest.mark.parametrize(
    "sent",
    [[{"type": "http.disconnect"}], [part(b'{"mo', True), {"type": "http.disconnect"}]],
)
async def test_a_client_that_leaves_first_is_a_client_disconnect(sent: list[dict[str, Any]]) -> None:
    with pytest.raises(ClientDisconnect):
        await read_body(messages(*sent))
