"""The metrics' tallies (``tally.py``): what a scrape shows is what prometheus-client would show had each
observation gone to it directly, whenever the flushes come and from whichever threads."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ailab.metrics import HTTP_BUCKETS, TOKEN_BUCKETS, Metrics
from tests.monitoring.helpers import samples, value

HTTP = "ailab_http_request_duration_seconds"
# Every bound itself (a value equal to a bound belongs to that bucket), values between them, below the
# first and past the last (+Inf).
DURATIONS = [0.0, *HTTP_BUCKETS, *(b * 1.5 for b in HTTP_BUCKETS), 0.0001, 1e6]


def _histogram_samples(text: str, name: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for s in samples(text)
        if s.name.startswith(name) and not s.name.endswith("_created")
    }


def test_a_histogram_matches_prometheus_client_observing_one_by_one() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    direct = Histogram(HTTP, "reference", buckets=HTTP_BUCKETS, registry=reference)
    for i, duration in enumerate(DURATIONS):
        metrics.observe_request("GET", "/x", 200, duration)
        direct.observe(duration)
        if i == len(DURATIONS) // 2:
            metrics.flush()  # a flush in between changes nothing
    ours = _histogram_samples(metrics.exposition().decode(), HTTP)
    expected = _histogram_samples(generate_latest(reference).decode(), HTTP)
    assert ours == expected
    assert ours[(f"{HTTP}_count", "")] == len(DURATIONS)
    # A second scrape counts nothing twice.
    assert _histogram_samples(metrics.exposition().decode(), HTTP) == expected


def test_generation_counters_and_token_histograms_add_up() -> None:
    metrics = Metrics()
    for tokens in (3, 40, 900):
        metrics.observe_generation(
            "openai",
            "gpt",
            ok=True,
            duration_s=0.5,
            ttft_s=0.1,
            prompt_tokens=tokens,
            completion_tokens=2 * tokens,
            error_kind=None,
        )
    metrics.observe_generation(
        "openai",
        "gpt",
        ok=False,
        duration_s=1.0,
        ttft_s=None,
        prompt_tokens=0,
        completion_tokens=0,
        error_kind="upstream_timeout",
    )
    text = metrics.exposition().decode()
    assert value(text, "ailab_llm_requests_total", model="gpt", outcome="ok") == 3
    assert value(text, "ailab_llm_requests_total", model="gpt", outcome="error") == 1
    assert value(text, "ailab_llm_errors_total", error_kind="upstream_timeout") == 1
    assert value(text, "ailab_llm_tokens_total", type="input") == 943
    assert value(text, "ailab_llm_tokens_total", type="output") == 1886
    assert value(text, "gen_ai_server_request_duration_seconds_sum") == 2.5
    assert value(text, "gen_ai_server_time_to_first_token_seconds_count") == 3
    # 40 input tokens: in the bucket le=64, and so in every one above it, not in le=16.
    usage = "gen_ai_client_token_usage_bucket"
    assert TOKEN_BUCKETS[2:4] == (16, 64)
    assert value(text, usage, token_type="input", le="16.0") == 1
    assert value(text, usage, token_type="input", le="64.0") == 2
    assert value(text, usage, token_type="input", le="+Inf") == 3


def test_threads_recording_at_once_lose_nothing() -> None:
    metrics = Metrics()
    per_thread, threads = 5_000, 4
    start = threading.Barrier(threads + 1)

    def record() -> None:
        start.wait()
        for _ in range(per_thread):
            metrics.observe_request("POST", "/v1/chat/completions", 200, 0.002)
            metrics.observe_route_attempt("fast", "a", "ok")

    workers = [threading.Thread(target=record) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    scraped = [metrics.exposition().decode() for _ in range(20)]  # flushes racing the recording
    for worker in workers:
        worker.join()
    text = metrics.exposition().decode()
    total = threads * per_thread
    assert value(text, f"{HTTP}_count", route="/v1/chat/completions") == total
    assert value(text, f"{HTTP}_bucket", route="/v1/chat/completions", le="0.0025") == total
    assert value(text, "ailab_route_attempts_total", alias="fast", outcome="ok") == total
    counts = [value(t, f"{HTTP}_count", route="/v1/chat/completions") for t in scraped]
    assert counts == sorted(counts)  # never more than was recorded, never going back
