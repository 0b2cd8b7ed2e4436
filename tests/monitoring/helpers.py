"""Reading the Prometheus exposition in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition (parsing it fails the test when it is malformed)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def family_names(text: str) -> set[str]:
    """The metric families of an exposition (also those without samples yet)."""
    return {family.name for family in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def scrape(client: httpx.AsyncClient) -> str:
    """GET /metrics/prometheus as the client's user."""
    response = await client.get("/metrics/prometheus")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text
