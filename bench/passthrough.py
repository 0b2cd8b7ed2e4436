"""A bare Starlette + aiohttp pass-through proxy: the floor any gateway is compared with.

``POST /v1/chat/completions`` is forwarded to ``--upstream`` over one pooled aiohttp session and the
answer's bytes streamed back; no auth, no parsing, no accounting. Run with::

    python bench/passthrough.py --port 9200 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def build_app(upstream: str) -> Starlette:
    """The proxy app for ``upstream`` (a base URL ending in /v1)."""
    session: aiohttp.ClientSession | None = None
    url = f"{upstream.rstrip('/')}/chat/completions"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal session
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector)
        yield
        await session.close()

    async def completions(request: Request) -> Response:
        assert session is not None
        body = await request.body()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        upstream_response = await session.post(url, data=body, headers=headers)
        content_type = upstream_response.headers.get("Content-Type", "application/json")
        if content_type.startswith("text/event-stream"):

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in upstream_response.content.iter_any():
                        yield chunk
                finally:
                    upstream_response.release()

            return StreamingResponse(relay(), status_code=upstream_response.status, media_type=content_type)
        data = await upstream_response.read()
        upstream_response.release()
        return Response(data, status_code=upstream_response.status, media_type=content_type)

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9100/v1")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
