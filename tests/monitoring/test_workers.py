"""``ai-lab serve --workers 2``: the Prometheus exposition covers both worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ailab.config import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.monitoring.helpers import value
from tests.support.server import run_server

pytestmark = pytest.mark.slow
COUNT = "ailab_http_request_duration_seconds_count"


def pids_of(directory: Path, prefix: str) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob(f"{prefix}_*.db")}


def test_two_workers_are_merged(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url=database_url)
    assert settings.master_key is not None
    data_dir = tmp_path / "data"
    stale = data_dir / "prometheus-multiproc"
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"left over from an earlier run")
    env = {
        "AILAB_DATA_DIR": str(data_dir),
        "AILAB_DATABASE_URL": database_url,
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_MASTER_KEY": settings.master_key.get_secret_value(),
        "AILAB_SYSTEM_SAMPLE_SECONDS": "0.5",
    }
    with run_server(env, "--workers", "2", log_path=tmp_path / "server.log") as server:
        login = httpx.post(
            f"{server.base_url}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        served_by: dict[int, int] = {}
        made = 0
        # A new connection per request, so the kernel hands them to either worker; stop once both served.
        while made < 400 and (len(served_by) < 2 or made < 20):
            response = httpx.get(f"{server.base_url}/metrics", headers=auth)
            assert response.status_code == 200, response.text
            assert response.json()["gpus"] == []
            pid = response.json()["pid"]
            served_by[pid] = served_by.get(pid, 0) + 1
            made += 1
        assert len(served_by) == 2, f"one worker served all {made} requests: {server.log()}"

        # Each request is recorded just after its answer was sent, in its own process: wait (bounded)
        # until the merged count has caught up, then it must be exact.
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"{server.base_url}/metrics/prometheus", headers=auth).text
            counted = value(text, COUNT, route="/metrics", method="GET", status_class="2xx")
            if counted >= made or time.monotonic() > deadline:
                break
        assert counted == made
        # Both workers wrote their own files, and the stale file of an earlier run was wiped at start.
        multiproc = data_dir / "prometheus-multiproc"
        assert pids_of(multiproc, "histogram") >= set(served_by)
        assert 1 not in pids_of(multiproc, "counter")
        # Live gauges are summed over the workers.
        assert value(text, "ailab_process_resident_memory_bytes") > 2 * 10 * 1024 * 1024

    # At shutdown each worker retired its live gauges; its counters and histograms stay.
    assert not pids_of(multiproc, "gauge_livesum") & set(served_by)
    assert pids_of(multiproc, "histogram") >= set(served_by)
