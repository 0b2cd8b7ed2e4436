"""``/openapi.json``: FastAPI's document, plus the request bodies of routes that read raw bytes.

The hot routes take their body as bytes (the gateway validates it once, on the fast lane too), so
FastAPI cannot see its model. :func:`json_body` declares it on the route; :func:`install` puts the
models it names into the document's components. A model is a pydantic model or a ``TypedDict`` (the chat
completions request is one: validating it builds no objects).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

_RAW_BODIES: dict[str, type] = {}
REF = "#/components/schemas/{model}"


def json_body(model: type) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body is ``model`` but which reads the bytes itself."""
    _RAW_BODIES[model.__name__] = model
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the models of :func:`json_body` routes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _RAW_BODIES.items():
                schema = TypeAdapter(model).json_schema(ref_template=REF)
                for inner, definition in schema.pop("$defs", {}).items():
                    components.setdefault(inner, definition)
                components.setdefault(name, schema)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
