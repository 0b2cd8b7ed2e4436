"""The embedded model's default thread count: the cores the process may use, not every CPU of the machine."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from ailab.config import Settings
from ailab.providers.cpus import cgroup_cpu_quota, usable_cores
from ailab.providers.local import PLUGIN
from tests.support.provider_settings import fold, make_provider


def cpu_max(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 1), ("50000 100000\n", 1)],
)
def test_the_cgroup_quota_is_read_in_whole_cpus(tmp_path: Path, text: str, cpus: int | None) -> None:
    assert cgroup_cpu_quota(cpu_max(tmp_path, text)) == cpus


def test_no_cgroup_file_or_a_garbled_one_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path / "absent") is None
    assert cgroup_cpu_quota(cpu_max(tmp_path, "")) is None
    assert cgroup_cpu_quota(cpu_max(tmp_path, "lots 0")) is None


def test_usable_cores_stay_within_the_affinity_the_physical_cores_and_the_quota(tmp_path: Path) -> None:
    allowed = len(os.sched_getaffinity(0))
    physical = psutil.cpu_count(logical=False) or allowed
    unlimited = usable_cores(cpu_max(tmp_path, "max 100000"))
    assert unlimited == min(allowed, physical)
    assert usable_cores(cpu_max(tmp_path, "100000 100000")) == 1  # docker --cpus 1
    assert usable_cores(cpu_max(tmp_path, "6400000 100000")) == unlimited  # a quota above the cores


def test_the_embedded_model_defaults_to_the_usable_cores_and_takes_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AILAB_LOCAL_THREADS", raising=False)
    default = make_provider(PLUGIN, Settings(_env_file=None))  # type: ignore[call-arg]
    assert default.n_threads == usable_cores()  # not loaded: threads are decided when it is built
    chosen = make_provider(PLUGIN, Settings(_env_file=None, **fold({"local_threads": 3})))  # type: ignore[call-arg]
    assert chosen.n_threads == 3
