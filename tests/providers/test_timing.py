"""One clock for every generation: what it measures, and one label per failure on every path."""

from __future__ import annotations

import asyncio

import httpx

from ailab.errors import ProviderAuthError
from ailab.providers.base import ChatChunk, Usage
from ailab.providers.registry import GenerationRecord, ProviderRegistry
from ailab.providers.timing import CANCELLED, GenerationTimer, error_label
from tests.fakes.openai_server import FakeOpenAI


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recorded(registry: ProviderRegistry) -> list[GenerationRecord]:
    records: list[GenerationRecord] = []
    registry.observers.append(records.append)
    return records


def test_measures_first_token_rate_and_usage() -> None:
    registry, clock = ProviderRegistry([]), Clock()
    records = recorded(registry)
    timer = GenerationTimer(registry, "p", "m", stream=True, clock=clock)
    clock.now += 0.5
    assert timer.take(ChatChunk(delta="Hel")) == "Hel"
    clock.now += 1.0
    timer.take(ChatChunk(delta="lo"))
    timer.take(ChatChunk(finish_reason="stop", usage=Usage(prompt_tokens=7, completion_tokens=11)))
    timer.finish()
    timer.finish(RuntimeError("too late"))  # recorded once, as it first ended
    assert timer.ttft_s == 0.5
    assert timer.duration_s == 1.5
    assert timer.tokens_per_second == 11.0  # 11 tokens in the second after the first one
    assert records == [
        GenerationRecord(
            provider="p",
            model="m",
            ok=True,
            duration_s=1.5,
            ttft_s=0.5,
            prompt_tokens=7,
            completion_tokens=11,
            stream=True,
        )
    ]


def test_counts_chunks_when_no_usage_is_reported() -> None:
    registry, clock = ProviderRegistry([]), Clock()
    records = recorded(registry)
    timer = GenerationTimer(registry, "p", "m", stream=True, clock=clock)
    for piece in ("a", "", "b", "c"):
        timer.take(ChatChunk(delta=piece))
    timer.finish(asyncio.CancelledError())
    assert (records[0].completion_tokens, records[0].ok, records[0].error_kind) == (3, False, CANCELLED)


def test_labels() -> None:
    assert error_label(None) is None
    assert error_label(ProviderAuthError("refused")) == "invalid_api_key"
    assert error_label(GeneratorExit()) == CANCELLED
    assert error_label(KeyError("x")) == "KeyError"
    assert error_label("invalid_answer") == "invalid_answer"


async def test_every_path_labels_the_same_failure_alike(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    registry: ProviderRegistry = upstream_client.services.providers  # type: ignore[attr-defined]
    records = recorded(registry)
    upstream.fail_status = 401
    model = "openai-compat/echo"
    for pipeline in ("direct", "agents"):
        await upstream_client.post("/chat", json={"message": "hi", "model": model, "pipeline": pipeline})
    bench = await upstream_client.post(
        "/benchmark/llm", json={"models": [model], "iterations": 1, "warmup": False}
    )
    assert bench.status_code == 200, bench.text
    assert bench.json()["results"][0]["iterations"][0]["error"].startswith("invalid_api_key: ")
    question = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        await upstream_client.post("/v1/chat/completions", json=question | {"stream": stream})
    paths = len(records)
    assert paths >= 5  # direct, the agents' first step, the benchmark, the gateway twice
    assert {(r.provider, r.model, r.ok, r.error_kind) for r in records} == {
        ("openai-compat", "echo", False, "invalid_api_key")
    }
