"""v2 session ids the API could not serve (file names with spaces...) become ids it does, readable and
deletable through the API; titles come from the first user message; ``thought_process`` is optional."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from ailab.config import Settings
from ailab.services.legacy.formats import session_id_for
from ailab.services.legacy.importer import LegacyImporter
from tests.conftest import AppClientFactory


def message(role: str, content: str, **extra: object) -> dict[str, object]:
    return {"role": role, "content": content, "timestamp": "2025-03-01T10:00:00", **extra}


async def test_names_become_ids_the_api_serves(
    tmp_path: Path, make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    folder = tmp_path / "v2" / "conversations"
    folder.mkdir(parents=True)
    # No thought_process at all: an optional field, not a reason to skip the file.
    (folder / "my chat 1.json").write_bytes(
        orjson.dumps(
            [message("User", "What is the capital of France?\nThanks"), message("Assistant", "Paris.")]
        )
    )
    (folder / "näive_weird.json").write_bytes(orjson.dumps([message("CEO", "Hello.")]))
    (folder / "plain-id.json").write_bytes(orjson.dumps([message("User", "hi", thought_process=None)]))

    settings = make_settings(database_url=database_url)
    async with app_client(settings) as client:
        admin = await client.services.auth.local_admin()  # type: ignore[attr-defined]
        importer = LegacyImporter(client.services.db)  # type: ignore[attr-defined]
        report = await importer.import_paths([folder.parent], admin.id)
        assert report.problems == []
        assert report.messages.imported == 4

        spaced = session_id_for("my chat 1")
        assert spaced.startswith("my-chat-1-") and len(spaced) == len("my-chat-1-") + 8
        assert session_id_for("plain-id") == "plain-id"  # served as it is: kept
        listed = {s["id"]: s for s in (await client.get("/sessions")).json()["items"]}
        assert set(listed) == {spaced, session_id_for("näive_weird"), "plain-id"}
        assert listed[spaced]["title"] == "What is the capital of France?"  # the first user message
        assert listed[session_id_for("näive_weird")]["title"] == "näive_weird"  # no user message: the name
        history = (await client.get(f"/sessions/{spaced}/messages")).json()["items"]
        assert [(m["role"], m["content"], m["thought_process"]) for m in history] == [
            ("User", "What is the capital of France?\nThanks", None),
            ("Assistant", "Paris.", None),
        ]
        for session_id in listed:
            assert (await client.get(f"/sessions/{session_id}")).status_code == 200
            assert (await client.delete(f"/sessions/{session_id}")).status_code == 204

        again = await importer.import_paths([folder.parent], admin.id)  # the same ids: nothing new
        assert again.sessions.imported == 0 and again.messages.imported == 0
