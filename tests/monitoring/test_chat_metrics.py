"""A chat on the embedded model shows up in the LLM metrics and the stored history."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from ailab.config import Settings
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.monitoring.helpers import samples, scrape, value

pytestmark = pytest.mark.slow


async def test_chat_feeds_llm_metrics(client: httpx.AsyncClient) -> None:
    model = (await client.get("/health")).json()["model"]["id"]
    provider, name = model.split("/", 1)
    before = await scrape(client)
    assert value(before, "gen_ai_server_time_to_first_token_seconds_count", provider=provider) == 0

    response = await client.post(
        "/chat", json={"message": "Say hello.", "pipeline": "direct", "max_tokens": 8, "model": model}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"

    after = await scrape(client)
    labels = {"provider": provider, "model": name}
    assert value(after, "gen_ai_server_time_to_first_token_seconds_count", **labels) == 1
    assert value(after, "gen_ai_server_time_to_first_token_seconds_sum", **labels) > 0
    assert value(after, "gen_ai_server_request_duration_seconds_count", **labels) == 1
    assert value(after, "ailab_llm_output_tokens_per_second_count", **labels) == 1
    output_tokens = value(after, "ailab_llm_tokens_total", **labels, type="output")
    assert 0 < output_tokens <= 8
    assert value(after, "ailab_llm_tokens_total", **labels, type="input") > 0
    assert value(after, "gen_ai_client_token_usage_count", **labels, token_type="output") == 1
    assert value(after, "ailab_llm_requests_total", **labels, outcome="ok") == 1
    http_chat = value(after, "ailab_http_request_duration_seconds_count", route="/chat", method="POST")
    assert http_chat == 1
    # Label values are the provider and model id only: never the prompt.
    assert not any("hello" in v.lower() for s in samples(after) for v in s.labels.values())

    summary = (await client.get("/performance/summary")).json()
    assert summary["models"][model]["count"] == 1
    assert summary["endpoints"]["POST /chat"]["count"] == 1


async def test_failed_generation_counts_an_error_kind(
    fake_openai_compat: FakeOpenAI,
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: AppClientFactory,
) -> None:
    settings = make_settings(database_url=database_url, openai_compat_base_url=fake_openai_compat.base_url)
    model_name = fake_openai_compat.models[0]
    async with app_client(settings) as client:
        ok = await client.post(
            "/chat", json={"message": "hi", "pipeline": "direct", "model": f"openai-compat/{model_name}"}
        )
        assert ok.status_code == 200, ok.text
        fake_openai_compat.fail_status = 500
        failed = await client.post(
            "/chat", json={"message": "hi", "pipeline": "direct", "model": f"openai-compat/{model_name}"}
        )
        assert failed.status_code == 502, failed.text
        text = await scrape(client)
        labels = {"provider": "openai-compat", "model": model_name}
        assert value(text, "ailab_llm_requests_total", **labels, outcome="ok") == 1
        assert value(text, "ailab_llm_requests_total", **labels, outcome="error") == 1
        [error] = [
            s
            for s in samples(text)
            if s.name == "ailab_llm_errors_total" and s.labels["provider"] == "openai-compat"
        ]
        assert error.value == 1
        assert error.labels["error_kind"].startswith("upstream")
        summary = (await client.get("/performance/summary")).json()
        assert summary["models"][f"openai-compat/{model_name}"]["errors"] == 1
        assert summary["models"][f"openai-compat/{model_name}"]["error_rate"] == 0.5
