"""``/openapi.json`` is the public shape of the API: a snapshot makes every change to it visible in review.

After an intended change, rewrite the snapshot and commit it with the change:
``.venv/bin/python -m tests.api.test_openapi``.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import httpx

from ailab.app import create_app
from ailab.config import Settings

SNAPSHOT = Path(__file__).with_name("openapi.json")


def current() -> dict[str, Any]:
    """The document the app serves (built without starting it)."""
    app = create_app(Settings(_env_file=None, data_dir=Path("unused")), migrate=False)  # type: ignore[call-arg]
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_document_matches_the_snapshot() -> None:
    expected, actual = SNAPSHOT.read_text(encoding="utf-8"), render(current())
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            "openapi.json (snapshot)",
            "openapi.json (now)",
            lineterm="",
        )
        shown = "\n".join(list(diff)[:80])
        raise AssertionError(
            f"the API's public shape changed; if intended, run `python -m tests.api.test_openapi`:\n{shown}"
        )


def test_every_operation_declares_its_success_response() -> None:
    untyped = []
    for path, operations in current()["paths"].items():
        for method, operation in operations.items():
            success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
            typed = any(
                code == "204" or any(c.get("schema") for c in r.get("content", {}).values())
                for code, r in success.items()
            )
            if not typed:
                untyped.append(f"{method.upper()} {path}")
    assert untyped == []


async def test_the_server_serves_the_same_document(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert render(served) == render(current())
    body = served["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    assert "messages" in served["components"]["schemas"]["ChatCompletionRequest"]["properties"]


if __name__ == "__main__":
    SNAPSHOT.write_text(render(current()), encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
