"""Plugin discovery end to end: a package that declares an ``ailab.providers`` entry point (installed
here as a real ``.dist-info`` on ``sys.path``) shows up in ``/v1/models`` and answers through the gateway."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ailab.config import Settings
from tests.conftest import AppClientFactory
from tests.gateway.conftest import sdk_for


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    dist = site / "ailab_example_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ailab-example-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ailab.providers]\nfake = tests.providers.plugin_example:PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(site))


@pytest.mark.usefixtures("installed_plugin")
async def test_an_installed_plugin_appears_in_v1_models(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=database_url)) as client:
        sdk = sdk_for(client)
        ids = [model.id async for model in sdk.models.list()]
        assert "fake/echo-1" in ids
        answer = await sdk.chat.completions.create(
            model="fake/echo-1", messages=[{"role": "user", "content": "abc"}]
        )
        assert answer.choices[0].message.content == "cba"
        await sdk.close()


async def test_without_the_plugin_it_is_absent(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=database_url)) as client:
        sdk = sdk_for(client)
        ids = [model.id async for model in sdk.models.list()]
        assert not any(i.startswith("fake/") for i in ids)
        await sdk.close()
