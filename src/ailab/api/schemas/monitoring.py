"""``/metrics``, ``/metrics/history``, ``/performance/summary`` and ``/performance/history``: the machine,
the process, and latency over time."""

from __future__ import annotations

from typing import Literal

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


class SystemHistorySample(BaseModel):
    """One reading of the machine."""

    t: float = Field(description="unix time of the reading, in seconds")
    cpu_usage_percent: float
    memory_usage_percent: float
    gpus: list[GpuOut] = Field(description="NVIDIA GPUs through NVML; empty without any")


class SystemHistory(BaseModel):
    """The background sampler's readings of the last minutes (kept in memory by this process), oldest
    first."""

    interval_seconds: float = Field(description="time between two readings")
    window_seconds: float = Field(description="how far back the readings go, at most")
    samples: list[SystemHistorySample]


class HistoryPoint(BaseModel):
    """One time bucket of one route or model (durations in milliseconds)."""

    t: int = Field(description="start of the bucket, unix time in seconds (UTC)")
    count: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    ttft_ms: float | None = Field(
        None, description="models only: median time to first token of the bucket's generations"
    )
    tokens_per_second: float | None = Field(
        None,
        description="models only: median of completion tokens / duration over successful generations",
    )


class HistorySeries(BaseModel):
    """The buckets of one route (``endpoint``, ``"<METHOD> <route template>"``) or model (``model``, its
    full id) that have samples, oldest first."""

    kind: Literal["endpoint", "model"]
    name: str
    count: int = Field(description="samples over the whole window")
    points: list[HistoryPoint]


class PerformanceHistory(BaseModel):
    """Latency per route and per model per time bucket over the last ``hours``."""

    hours: int
    buckets: int = Field(description="the most buckets a series has")
    bucket_seconds: int = Field(description="ceil(hours * 3600 / buckets); buckets start at multiples of it")
    since: str = Field(description="start of the oldest bucket (ISO 8601, UTC)")
    unit: str
    percentile_method: str
    truncated: bool = Field(
        description="true when the window held more samples than one answer reads: older buckets are left out"
    )
    series: list[HistorySeries]
