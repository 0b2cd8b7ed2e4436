"""Embeddings of every backend that has them, each against its own fake server: the vectors in order,
batching at the backend's limit, usage, the wire each speaks, and errors mapped as chat's are.

Vectors are compared exactly: a float goes through JSON unchanged (the shortest repr that reads back the
same number)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ailab.errors import ModelNotFound, ProviderAuthError, ProviderRateLimited, ProviderRejected
from ailab.providers import azure, huggingface, openai
from ailab.providers.base import SupportsEmbeddings, SupportsEmbeddingsForward
from tests.fakes.base import FakeServer, bag_of_words_vector
from tests.fakes.openai_server import FakeHuggingFace
from tests.providers.conftest import BACKENDS, Backend, ProviderFactory, only
from tests.providers.test_proxy import ForwardProxy


@dataclass(frozen=True)
class Embedder:
    """An embedding model each fake serves, the batch the provider must cut at, and what one request
    looks like on the wire."""

    model: str
    batch: int
    path: str  # of an embeddings request
    counts_tokens: bool = True


EMBEDDERS = {
    "openai": Embedder("text-embedding-3-small", 2048, "/v1/embeddings"),
    "openai-compat": Embedder("embed-small", 2048, "/v1/embeddings"),
    "azure": Embedder("embed-prod", 2048, "/openai/deployments/embed-prod/embeddings"),
    "huggingface": Embedder("Qwen/Qwen3-Embedding-0.6B", 32, "/v1/embeddings"),
    "gemini": Embedder(
        "gemini-embedding-001",
        100,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        counts_tokens=False,
    ),
    "cohere": Embedder("embed-v4.0", 96, "/v2/embed"),
    "ollama": Embedder("nomic-embed-text", 256, "/api/embed"),
}
EMBEDDING = [b for b in BACKENDS if b.name in EMBEDDERS]
TEXTS = ["the cat sat on the mat", "stock prices fell sharply", "a cat on a mat"]


def settings(backend: Backend, fake: FakeServer, **overrides: Any) -> dict[str, Any]:
    values = backend.settings_for(fake, **overrides)
    if backend.name == "azure":
        values["azure_deployments"] = [*fake.models, "embed-prod"]
    return values


@only(EMBEDDING)
async def test_one_vector_per_text_in_order(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    embedder = EMBEDDERS[backend.name]
    provider = build(backend.plugin, **settings(backend, fake))
    assert isinstance(provider, SupportsEmbeddings)
    result = await provider.embed(embedder.model, TEXTS)
    assert result.vectors == [bag_of_words_vector(text) for text in TEXTS]
    assert [r.path for r in fake.requests] == [embedder.path]
    if embedder.counts_tokens:
        assert result.usage is not None and result.usage.prompt_tokens == 15  # the fakes count words
    else:
        assert result.usage is None  # Gemini counts nothing: nothing is made up


@only(EMBEDDING)
async def test_inputs_past_the_backends_limit_go_in_batches_in_order(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    embedder = EMBEDDERS[backend.name]
    provider = build(backend.plugin, **settings(backend, fake))
    texts = [f"note number{i}" for i in range(2 * embedder.batch + 1)]
    result = await provider.embed(embedder.model, texts)
    assert len(fake.requests) == 3
    assert result.vectors == [bag_of_words_vector(text) for text in texts]
    if embedder.counts_tokens:
        assert result.usage is not None and result.usage.prompt_tokens == 2 * len(texts)  # summed


@only(EMBEDDING)
async def test_dimensions_reach_the_backend(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **settings(backend, fake))
    result = await provider.embed(EMBEDDERS[backend.name].model, ["short vectors"], dimensions=16)
    assert result.vectors == [bag_of_words_vector("short vectors", dims=16)]


@only([b for b in EMBEDDING if b.key_required])
async def test_a_refused_key_is_an_auth_error_without_the_key(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    wrong = "wrong-key-0123456789-secret"
    provider = build(backend.plugin, **settings(backend, fake, key=wrong))
    with pytest.raises(ProviderAuthError) as caught:
        await provider.embed(EMBEDDERS[backend.name].model, TEXTS)
    assert wrong not in caught.value.message
    assert f"ai-lab keys set {backend.name}" in caught.value.message


@only([b for b in EMBEDDING if b.key_required])
async def test_no_key_says_how_to_set_one_and_sends_nothing(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **settings(backend, fake, key=None))
    with pytest.raises(ProviderAuthError, match=f"no API key for {backend.name}"):
        await provider.embed(EMBEDDERS[backend.name].model, TEXTS)
    assert fake.requests == []


@only(EMBEDDING)
async def test_rate_limited_carries_retry_after(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    fake.fail_status, fake.retry_after = 429, "12"
    provider = build(backend.plugin, **settings(backend, fake))
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.embed(EMBEDDERS[backend.name].model, TEXTS)
    assert caught.value.retry_after == 12


@only(EMBEDDING)
async def test_a_model_without_embeddings_is_not_found(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **settings(backend, fake))
    model = "ghost-model" if backend.name != "azure" else "gpt4o-prod"  # a chat deployment
    with pytest.raises(ModelNotFound):
        await provider.embed(model, TEXTS)


async def test_azure_embeds_only_with_a_configured_deployment(
    fake_azure: FakeServer, build: ProviderFactory
) -> None:
    provider = build(azure.PLUGIN, **next(b for b in BACKENDS if b.name == "azure").settings_for(fake_azure))
    with pytest.raises(ModelNotFound, match="unknown deployment 'azure/embed-prod'"):
        await provider.embed("embed-prod", TEXTS)
    assert fake_azure.requests == []  # refused before anything is sent with the api-key header

    provider = build(
        azure.PLUGIN,
        azure_base_url=fake_azure.base_url,
        azure_api_key=fake_azure.api_key,
        azure_deployments=["embed-prod"],
    )
    await provider.embed("embed-prod", ["x"])
    request = fake_azure.last
    assert request.query == {"api-version": "2024-10-21"}
    assert request.header("api-key") == fake_azure.api_key and request.header("authorization") is None


async def test_openai_wire_providers_forward_and_the_router_does_not(
    fake_openai: FakeServer, build: ProviderFactory
) -> None:
    provider = build(openai.PLUGIN, openai_base_url=fake_openai.base_url, openai_api_key=fake_openai.api_key)
    assert isinstance(provider, SupportsEmbeddingsForward)
    payload = {"model": "text-embedding-3-small", "input": [[1, 2, 3]], "encoding_format": "base64"}
    upstream = await provider.forward_embeddings(payload)
    assert upstream is not None and upstream.status == 200
    assert fake_openai.last.json == payload  # as it came: token arrays and all
    await upstream.body.aclose()  # type: ignore[attr-defined]

    router = build(huggingface.PLUGIN, huggingface_api_key="hf_" + "a" * 34)  # the default base URL
    assert await router.forward_embeddings(payload) is None  # no request: the router speaks another wire


@pytest.mark.usefixtures("clean_proxy_env")
async def test_huggingface_router_embeds_through_feature_extraction(
    fake_huggingface: FakeHuggingFace, build: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The router's address, reached through a proxy that relays to the fake.
    async with ForwardProxy(fake_huggingface.origin) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        provider = build(
            huggingface.PLUGIN,
            huggingface_base_url="http://router.huggingface.co/v1",
            huggingface_api_key=fake_huggingface.api_key,
        )
        texts = [f"passage {i}" for i in range(33)]
        result = await provider.embed("Qwen/Qwen3-Embedding-0.6B", texts)
        assert result.vectors == [bag_of_words_vector(text) for text in texts]
        assert result.usage is None
        path = "/hf-inference/models/Qwen/Qwen3-Embedding-0.6B/pipeline/feature-extraction"
        assert [r.path for r in fake_huggingface.requests] == [path, path]  # 32, then 1
        assert fake_huggingface.requests[0].json == {"inputs": texts[:32]}
        assert fake_huggingface.last.header("authorization") == f"Bearer {fake_huggingface.api_key}"
        with pytest.raises(ProviderRejected, match="a vector per token"):
            await provider.embed("google-bert/bert-token-base", ["two words"])
