"""The application: apps built in one process share their routes' set-up, and nothing else; a started
app keeps its start-up objects out of the garbage collector's passes until it stops."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Callable
from pathlib import Path

from ailab.app import YOUNG_GC_THRESHOLD
from ailab.config import Settings
from tests.conftest import AppClientFactory


async def test_two_apps_share_their_routes_and_keep_their_own_state(
    tmp_path: Path,
    sqlite_template: Path,
    make_settings: Callable[..., Settings],
    app_client: AppClientFactory,
) -> None:
    def database(name: str) -> str:
        (tmp_path / name).mkdir()
        shutil.copyfile(sqlite_template, tmp_path / name / "ai_lab.db")
        return f"sqlite+aiosqlite:///{tmp_path / name / 'ai_lab.db'}"

    guarded = make_settings(database_url=database("guarded"), data_dir=tmp_path / "guarded")
    open_ = make_settings(database_url=database("open"), data_dir=tmp_path / "open", auth="off")
    async with (
        app_client(guarded) as first,
        app_client(open_, login=False, base_url="http://127.0.0.1") as second,
    ):
        # One node of routes, worked out once, in both apps...
        first_routes, second_routes = first.app.router.routes, second.app.router.routes  # type: ignore[attr-defined]
        assert len({id(route) for route in first_routes} & {id(route) for route in second_routes}) == 1
        # ...each answering from its own settings and its own database.
        made = await first.post("/sessions", json={"title": "only in the first"})
        assert made.status_code in (200, 201), made.text
        assert (await first.get("/sessions", headers={"Authorization": ""})).status_code == 401
        listed = await second.get("/sessions")
        assert listed.status_code == 200, listed.text
        assert "only in the first" not in listed.text
        assert "only in the first" in (await first.get("/sessions")).text
        assert (await second.get("/no/such/route")).status_code == 404


async def test_a_started_app_freezes_its_start_up_objects_and_paces_the_collector_until_it_stops(
    settings: Settings, app_client: AppClientFactory
) -> None:
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    async with app_client(settings) as client:
        # The modules, routes and services (and, here, the test process's own objects).
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *thresholds[1:])
        assert (await client.get("/health/ready")).status_code == 200
        async with app_client(settings) as other:  # two apps in one process: the last to stop restores
            assert (await other.get("/health/ready")).status_code == 200
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *thresholds[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
