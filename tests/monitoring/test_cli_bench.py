"""``ai-lab bench`` as a real subprocess on the embedded model."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ailab.config import Settings
from ailab.db.tables import BenchmarkRun
from ailab.services.container import build_services
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("ai-lab"))


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    full.update(env, COLUMNS="200")
    return subprocess.run(
        [CLI, *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_bench_cli(make_settings: Callable[..., Settings], database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url=database_url)
    assert settings.master_key is not None
    env = {
        "AILAB_DATA_DIR": str(tmp_path / "data"),
        "AILAB_DATABASE_URL": database_url,
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_MASTER_KEY": settings.master_key.get_secret_value(),
    }
    done = run_cli(env, "bench", "--iterations", "2", "--max-tokens", "6", "--prompt", "Say hi.")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "local/" in done.stdout
    assert "2/2" in done.stdout  # both iterations succeeded
    assert "stored as benchmark run" in done.stdout
    run_id = done.stdout.rsplit("stored as benchmark run", 1)[1].split()[0]

    async def stored() -> list[BenchmarkRun]:
        services = await build_services(settings)
        try:
            return list(await services.benchmarks.list_runs(None, include_ownerless=True))
        finally:
            await services.aclose()

    [run] = asyncio.run(stored())
    assert run.id == run_id
    assert run.status == "done"
    results = run.results["models"]
    assert isinstance(results, list)
    assert all(it["ttft_ms"] > 0 and it["tokens_per_second"] > 0 for it in results[0]["iterations"])

    unknown = run_cli(env, "bench", "--model", "nosuch/model", "--iterations", "1")
    assert unknown.returncode == 1
    assert "unknown model" in unknown.stderr
    assert "Traceback" not in unknown.stderr + unknown.stdout
    bounds = run_cli(env, "bench", "--iterations", "0")
    assert bounds.returncode == 2
    assert "Traceback" not in bounds.stderr + bounds.stdout
