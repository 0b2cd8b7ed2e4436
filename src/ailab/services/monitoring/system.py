"""Readings of the machine and this process: CPU, memory, the data dir's disk, RSS and the GPUs (NVML)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("ailab.monitoring")
MB = 1024 * 1024
RECENT_SECONDS = 600.0  # how far back the sampler's ring of readings goes (``GET /metrics/history``)


@dataclass(frozen=True, slots=True)
class GpuSample:
    name: str
    utilization_percent: float
    memory_used_mb: float
    memory_total_mb: float
    temperature_c: float | None


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One reading of the machine and this process."""

    cpu_usage_percent: float
    memory_usage_percent: float
    memory_used_mb: float
    memory_total_mb: float
    disk_usage_percent: float
    disk_used_gb: float
    disk_total_gb: float
    process_rss_mb: float
    process_cpu_percent: float
    gpus: list[GpuSample] = field(default_factory=list)
    sampled_at: float = 0.0  # unix time


class Nvml:
    """GPUs through NVML (nvidia-ml-py). Missing library, driver or GPU all mean: no GPUs."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._tried = False
        self._lock = threading.Lock()

    def _init(self) -> Any:
        if self._tried:
            return self._nvml
        self._tried = True
        try:
            import pynvml  # optional at run time: a machine without the driver has no libnvidia-ml

            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - no NVML is a normal machine, not an error
            log.debug("NVML unavailable: %s", exc)
            return None
        self._nvml = pynvml
        return pynvml

    def sample(self) -> list[GpuSample]:
        """One reading per GPU (blocking: call it in a thread)."""
        with self._lock:
            nvml = self._init()
            if nvml is None:
                return []
            try:
                return [self._one(nvml, i) for i in range(nvml.nvmlDeviceGetCount())]
            except Exception as exc:  # noqa: BLE001 - a GPU fallen off the bus must not break /metrics
                log.warning("NVML read failed: %s", exc)
                return []

    @staticmethod
    def _one(nvml: Any, index: int) -> GpuSample:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:  # not supported on some (MIG, vGPU) devices
            utilization = 0.0
        try:
            temperature: float | None = float(
                nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            )
        except nvml.NVMLError:
            temperature = None
        return GpuSample(
            name=name.decode() if isinstance(name, bytes) else str(name),
            utilization_percent=utilization,
            memory_used_mb=round(memory.used / MB, 1),
            memory_total_mb=round(memory.total / MB, 1),
            temperature_c=temperature,
        )

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlShutdown()
                self._nvml = None


class SystemSampler:
    """Reads the machine in a thread every ``interval`` seconds and keeps the last reading, and the
    readings of the last ``RECENT_SECONDS`` in a ring (a few hundred small records: nothing stored)."""

    def __init__(self, data_dir: Path, interval: float) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self.latest: SystemSample | None = None
        self.recent: deque[SystemSample] = deque(maxlen=max(1, math.ceil(RECENT_SECONDS / interval)))
        self.ready = asyncio.Event()
        self.nvml = Nvml()
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        self._process.cpu_percent(interval=None)

    def read(self) -> SystemSample:
        """Take one sample now (blocking: NVML and the file system; call it in a thread)."""
        memory = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(str(self.data_dir))
            disk_values = (float(disk.percent), disk.used / 1024**3, disk.total / 1024**3)
        except OSError:
            disk_values = (0.0, 0.0, 0.0)
        return SystemSample(
            cpu_usage_percent=float(psutil.cpu_percent(interval=None)),
            memory_usage_percent=float(memory.percent),
            memory_used_mb=round((memory.total - memory.available) / MB, 1),
            memory_total_mb=round(memory.total / MB, 1),
            disk_usage_percent=disk_values[0],
            disk_used_gb=round(disk_values[1], 2),
            disk_total_gb=round(disk_values[2], 2),
            process_rss_mb=round(self._process.memory_info().rss / MB, 1),
            process_cpu_percent=float(self._process.cpu_percent(interval=None)),
            gpus=self.nvml.sample(),
            sampled_at=time.time(),
        )

    async def sample(self) -> SystemSample:
        """Take a sample in a thread and keep it as the latest."""
        self.latest = await asyncio.to_thread(self.read)
        self.recent.append(self.latest)
        self.ready.set()
        return self.latest

    async def run(self, on_sample: Callable[[SystemSample], None], stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set; a failing sample is logged and retried next time."""
        while not stop.is_set():
            try:
                on_sample(await self.sample())
            except Exception:
                log.exception("system sample failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
