"""``/metrics`` and ``/performance/summary``: the machine, the process, and latency over time."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GpuOut(BaseModel):
    name: str
    utilization_percent: float
    memory_used_mb: float
    memory_total_mb: float
    temperature_c: float | None


class PoolOut(BaseModel):
    """Connections of this process's database pool."""

    in_use: int
    idle: int


class SystemMetrics(BaseModel):
    """The sampler's last reading of the machine and this process, and the process's state."""

    cpu_usage_percent: float
    memory_usage_percent: float
    memory_used_mb: float
    memory_total_mb: float
    disk_usage_percent: float = Field(description="of the disk holding the data dir")
    disk_used_gb: float
    disk_total_gb: float
    process_rss_mb: float
    process_cpu_percent: float
    gpus: list[GpuOut] = Field(description="NVIDIA GPUs through NVML; empty without any")
    sampled_at: float = Field(description="unix time of the reading")
    uptime_seconds: float
    started_at: str
    pid: int
    database_pool: PoolOut
    performance_buffer: int = Field(description="latency records waiting to be written")
    performance_dropped: int = Field(description="latency records dropped because the buffer was full")


class LatencyStats(BaseModel):
    """Of one endpoint, model or function over the window (milliseconds)."""

    count: int
    errors: int
    error_rate: float
    p50: float | None
    p95: float | None
    p99: float | None


class PerformanceSummary(BaseModel):
    """Latency percentiles per endpoint, model and function over the last ``hours``."""

    hours: float
    since: str
    unit: str
    percentile_method: str
    total: int
    endpoints: dict[str, LatencyStats]
    models: dict[str, LatencyStats]
    functions: dict[str, LatencyStats]
    legacy: dict[str, LatencyStats] = Field(description="latency imported from AI-Lab v2")
