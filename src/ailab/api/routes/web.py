"""The web UI and the API docs, served from the built files in ``ailab/web/dist`` (no Node.js at run time).

``GET /`` gives a browser (``Accept: text/html``) the UI's page and an API client its JSON, as before.
``/ui/...`` serves the built files: content-hashed names are cached for a year, the gzip twin written at
build time is sent to a client that accepts it. The page comes with a Content-Security-Policy that
allows no inline script, so nothing a model writes into it can run. ``/docs`` is Swagger UI from the
same files, so it works offline and tells no third party who reads the API docs.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from ailab.errors import NotFound

DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",  # always revalidated: it names the current hashed assets
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"
HASHED_DIR = "assets"  # Vite writes content-hashed names here

router = APIRouter(include_in_schema=False)
AssetPath = Annotated[str, PathParam(max_length=256)]


def wants_page(request: Request) -> bool:
    """Whether ``GET /`` comes from a browser (it asks for HTML) and there is a UI to give it."""
    return "text/html" in request.headers.get("accept", "") and (DIST / "index.html").is_file()


def page() -> Response:
    """The UI's single page."""
    return FileResponse(DIST / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/ui/{path:path}")
async def asset(path: AssetPath, request: Request) -> Response:
    """A built file of the UI (its gzip twin when the client accepts gzip)."""
    root = DIST.resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file() or target.suffix == ".gz":
        raise NotFound(f"no UI file {path!r}")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers = {
        "Cache-Control": IMMUTABLE if target.parent.name == HASHED_DIR else "no-cache",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    packed = target.with_name(target.name + ".gz")
    if "gzip" in request.headers.get("accept-encoding", "") and packed.is_file():
        headers["Content-Encoding"] = "gzip"
        return FileResponse(packed, media_type=media_type, headers=headers)
    return FileResponse(target, media_type=media_type, headers=headers)


@router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI for ``/openapi.json``, from this server's own files."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="AI-Lab API",
        swagger_js_url="/ui/swagger/swagger-ui-bundle.js",
        swagger_css_url="/ui/swagger/swagger-ui.css",
        swagger_favicon_url="/ui/swagger/favicon-32x32.png",
    )
