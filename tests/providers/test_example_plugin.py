"""The example third-party plugin (``examples/ailab-mistral``), installed as a user would install it.

It is built and installed by pip into a temporary directory put on ``sys.path``; then, without any change
to AI-Lab, its key is validated and stored in the vault, tested, and used through the gateway against a
fake Mistral server that speaks its (OpenAI-shaped) wire.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import select

from ailab.config import Settings
from ailab.db.tables import ApiKey
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.conftest import sdk_for
from tests.vault.conftest import last_bearer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ailab-mistral"
KEY = "Mq7Zp2Lx9Vb4Nc8Rt1Yw6Ks3Hd5Jf0Ga"  # the shape of a Mistral key: 32 letters and digits


class FakeMistral(FakeOpenAI):
    """Mistral's chat completions API: OpenAI's wire with Mistral's models."""

    provider: ClassVar[str] = "mistral"
    default_api_key: ClassVar[str | None] = KEY
    default_models: ClassVar[tuple[str, ...]] = ("mistral-small-latest", "open-mistral-nemo")
    owned_by: ClassVar[str] = "mistralai"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` of the example into a fresh target directory (built from a copy of its source)."""
    root = tmp_path_factory.mktemp("example-plugin")
    source = shutil.copytree(EXAMPLE, root / "source")  # the build leaves files next to the source
    target = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
async def mistral(installed: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeMistral]:
    """The fake Mistral server, with the plugin on sys.path and its own setting pointing at the fake."""
    monkeypatch.syspath_prepend(str(installed))
    async with FakeMistral() as server:
        monkeypatch.setenv("AILAB_MISTRAL_BASE_URL", server.base_url)
        yield server


async def test_a_third_party_plugin_stores_tests_and_uses_its_key(
    mistral: FakeMistral,
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: AppClientFactory,
) -> None:
    async with app_client(make_settings(database_url=database_url)) as client:
        services = client.services  # type: ignore[attr-defined]
        listed = (await client.get("/api-keys")).json()
        assert "mistral" in listed["supported_services"]

        # The plugin's own format is what the vault checks: a wrong key is refused, and not echoed.
        wrong = "sk-" + KEY
        r = await client.post("/api-keys", json={"service_name": "mistral", "api_key": wrong})
        assert r.status_code == 422
        assert "a Mistral API key: 32 letters and digits" in r.json()["detail"]
        assert wrong not in r.text

        r = await client.post("/api-keys", json={"service_name": "Mistral", "api_key": KEY})
        assert r.status_code == 200, r.text
        (entry,) = (await client.get("/api-keys")).json()["configured_services"]
        assert (entry["service_name"], entry["masked_key"]) == ("mistral", "••••" + KEY[-4:])
        async with services.db.read() as session:
            row = (await session.scalars(select(ApiKey))).one()
        assert row.service == "mistral" and KEY not in row.ciphertext

        # Tested with a real call made with the stored key.
        r = await client.post("/api-keys/mistral/test")
        assert r.json()["result"] == "valid", r.json()
        assert last_bearer(mistral) == KEY

        # Used: the model is listed and answers through the OpenAI-compatible API.
        sdk = sdk_for(client)
        ids = [model.id async for model in sdk.models.list()]
        assert "mistral/mistral-small-latest" in ids
        answer = await sdk.chat.completions.create(
            model="mistral/mistral-small-latest", messages=[{"role": "user", "content": "Bonjour"}]
        )
        await sdk.close()
        assert answer.choices[0].message.content == mistral.reply
        sent = mistral.requests[-1]
        assert sent.path == "/v1/chat/completions" and last_bearer(mistral) == KEY
        assert sent.json["model"] == "mistral-small-latest"


async def test_without_its_key_the_plugin_says_how_to_add_one(
    mistral: FakeMistral,
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: AppClientFactory,
) -> None:
    async with app_client(make_settings(database_url=database_url)) as client:
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "mistral/mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert r.status_code == 502, r.text  # the server's configuration, not the caller, is at fault
        assert (
            "`ai-lab keys set mistral` or the AILAB_MISTRAL_API_KEY setting" in r.json()["error"]["message"]
        )
        assert mistral.requests == []  # nothing was sent without a key
