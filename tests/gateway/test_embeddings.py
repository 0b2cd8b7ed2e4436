"""``POST /v1/embeddings`` through the official ``openai`` SDK: the pass-through to an OpenAI-compatible
upstream, translation for Gemini, Cohere and Ollama (floats and base64), usage counted, and OpenAI-shaped
errors for what cannot embed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import numpy as np
import openai
import pytest
from pydantic import SecretStr

from ailab.config import Settings
from ailab.providers.registry import GenerationRecord
from tests.conftest import AppClientFactory
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import FakeServer, bag_of_words_vector
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.conftest import sdk_for
from tests.monitoring.helpers import scrape, value
from tests.support.provider_settings import configure

TEXTS = ["the cat sat on the mat", "stock prices fell sharply", "a cat on a mat"]
WORDS = 15  # what the fakes that count tokens count for TEXTS
TRANSLATED = {  # model id -> the path of the upstream's own embeddings request
    "gemini/gemini-embedding-001": "/v1beta/models/gemini-embedding-001:batchEmbedContents",
    "cohere/embed-v4.0": "/v2/embed",
    "ollama/nomic-embed-text": "/api/embed",
}


@dataclass
class Lab:
    """The app, its SDK, the fakes behind its providers, and the generation records it reports."""

    client: httpx.AsyncClient
    sdk: openai.AsyncOpenAI
    fakes: dict[str, FakeServer]
    records: list[GenerationRecord]

    def fake(self, model_id: str) -> FakeServer:
        return self.fakes[model_id.partition("/")[0]]


@pytest.fixture
async def lab(app_client: AppClientFactory, settings: Settings, upstream: FakeOpenAI) -> AsyncIterator[Lab]:
    """The app with openai-compat, gemini, cohere, ollama and anthropic on their fakes."""
    async with (
        FakeGemini() as gemini,
        FakeCohere() as cohere,
        FakeOllama() as ollama,
        FakeAnthropic() as anthropic,
    ):
        configured = configure(
            settings,
            openai_compat_base_url=upstream.base_url,
            gemini_base_url=gemini.base_url,
            gemini_api_key=SecretStr(gemini.api_key or ""),
            cohere_base_url=cohere.base_url,
            cohere_api_key=SecretStr(cohere.api_key or ""),
            ollama_base_url=ollama.base_url,
            anthropic_base_url=anthropic.base_url,
            anthropic_api_key=SecretStr(anthropic.api_key or ""),
        )
        async with app_client(configured) as client:
            records: list[GenerationRecord] = []
            client.services.providers.observers.append(records.append)  # type: ignore[attr-defined]
            sdk = sdk_for(client)
            fakes = {"openai-compat": upstream, "gemini": gemini, "cohere": cohere, "ollama": ollama}
            yield Lab(client, sdk, fakes, records)
            await sdk.close()


def as_float32(vector: list[float]) -> list[float]:
    """``vector`` as base64 carries it: rounded to float32."""
    return np.asarray(vector, dtype=np.float32).tolist()  # type: ignore[no-any-return]


async def test_pass_through_forwards_as_sent_and_names_the_model_as_requested(lab: Lab) -> None:
    upstream = lab.fakes["openai-compat"]
    answer = await lab.sdk.embeddings.create(model="openai-compat/embed-small", input=TEXTS)
    # The SDK asks for base64 unless told otherwise, and decodes it: the upstream did the encoding.
    assert upstream.last.json == {"model": "embed-small", "input": TEXTS, "encoding_format": "base64"}
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert [item.embedding for item in answer.data] == [as_float32(bag_of_words_vector(t)) for t in TEXTS]
    assert answer.model == "openai-compat/embed-small"
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (WORDS, WORDS)
    assert [(r.provider, r.model, r.prompt_tokens, r.completion_tokens, r.ok) for r in lab.records] == [
        ("openai-compat", "embed-small", WORDS, 0, True)
    ]


async def test_pass_through_takes_token_arrays_and_dimensions(lab: Lab) -> None:
    answer = await lab.sdk.embeddings.create(
        model="openai-compat/embed-small", input=[[1, 2], [3]], dimensions=8, encoding_format="float"
    )
    assert lab.fakes["openai-compat"].last.json["input"] == [[1, 2], [3]]
    assert [item.embedding for item in answer.data] == [
        bag_of_words_vector("t1 t2", 8),
        bag_of_words_vector("t3", 8),
    ]


@pytest.mark.parametrize("model_id", list(TRANSLATED))
async def test_translated_backends_answer_openais_shape(lab: Lab, model_id: str) -> None:
    fake = lab.fake(model_id)
    answer = await lab.sdk.embeddings.create(model=model_id, input=TEXTS, encoding_format="float")
    assert answer.object == "list" and answer.model == model_id
    assert [(item.object, item.index) for item in answer.data] == [
        ("embedding", 0),
        ("embedding", 1),
        ("embedding", 2),
    ]
    assert [item.embedding for item in answer.data] == [bag_of_words_vector(t) for t in TEXTS]
    assert [r.path for r in fake.requests] == [TRANSLATED[model_id]]
    counted = 0 if model_id.startswith("gemini/") else WORDS  # Gemini's answer counts no tokens
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (counted, counted)
    assert lab.records[-1].prompt_tokens == counted and lab.records[-1].ok


@pytest.mark.parametrize("model_id", list(TRANSLATED))
async def test_base64_is_little_endian_float32_as_openai_sends_it(lab: Lab, model_id: str) -> None:
    decoded = await lab.sdk.embeddings.create(model=model_id, input="one text only")  # the SDK's default
    assert decoded.data[0].embedding == as_float32(bag_of_words_vector("one text only"))

    raw = await lab.sdk.embeddings.create(model=model_id, input=["one text only"], encoding_format="base64")
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)
    vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert vector.tolist() == as_float32(bag_of_words_vector("one text only"))


async def test_many_inputs_are_batched_upstream_and_answered_in_order(lab: Lab) -> None:
    texts = [f"note number{i}" for i in range(200)]  # Cohere takes 96 texts per call
    answer = await lab.sdk.embeddings.create(model="cohere/embed-v4.0", input=texts, encoding_format="float")
    assert len(lab.fakes["cohere"].requests) == 3
    assert [item.index for item in answer.data] == list(range(200))
    assert [item.embedding for item in answer.data] == [bag_of_words_vector(t) for t in texts]
    assert answer.usage.prompt_tokens == 400


async def test_dimensions_reach_a_translated_backend(lab: Lab) -> None:
    answer = await lab.sdk.embeddings.create(
        model="ollama/nomic-embed-text", input="short", dimensions=16, encoding_format="float"
    )
    assert lab.fakes["ollama"].last.json["dimensions"] == 16
    assert len(answer.data[0].embedding) == 16


async def test_token_arrays_need_an_openai_wire_upstream(lab: Lab) -> None:
    with pytest.raises(openai.BadRequestError, match="token arrays reach only providers that speak OpenAI"):
        await lab.sdk.embeddings.create(model="gemini/gemini-embedding-001", input=[[1, 2, 3]])
    assert lab.fakes["gemini"].requests == []


@pytest.mark.parametrize(
    ("model_id", "provider"),
    [("anthropic/claude-sonnet-4-5", "anthropic"), ("local/smollm2-135m-instruct", "local")],
)
async def test_a_provider_without_embeddings_is_a_bad_request_naming_it(
    lab: Lab, model_id: str, provider: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await lab.sdk.embeddings.create(model=model_id, input=TEXTS)
    message = caught.value.message
    assert f"{provider} has no embeddings API" in message
    assert "cohere, gemini" in message  # the providers that have, to choose from
    assert caught.value.body is not None and caught.value.code == "invalid_request"
    assert lab.records == []  # nothing ran


async def test_unknown_models_are_not_found(lab: Lab) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await lab.sdk.embeddings.create(model="nowhere/model", input=TEXTS)
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):  # the upstream's own 404: a chat model does not embed
        await lab.sdk.embeddings.create(model="ollama/ghost", input=TEXTS)
    assert lab.records[-1].error_kind == "model_not_found"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b'{"model": "cohere/embed-v4.0", "input": []}', "'input': Value error, must be a non-empty string"),
        (b'{"model": "cohere/embed-v4.0", "input": ["a", ""]}', "'input'"),
        (b'{"model": "cohere/embed-v4.0", "input": 7}', "'input'"),
        (b'{"model": "cohere/embed-v4.0"}', "'input': Field required"),
        (b'{"model": "cohere/embed-v4.0", "input": "a", "encoding_format": "hex"}', "'encoding_format'"),
        (b'{"model": "cohere/embed-v4.0", "input": "a", "dimensions": 0}', "'dimensions'"),
        (b'{"model": "pipeline/agents", "input": "a"}', "is a pipeline"),
        (b"{nope", "not valid JSON"),
        (b"[]", "must be a JSON object"),
    ],
)
async def test_bad_requests_answer_400_in_openais_shape(lab: Lab, body: bytes, complaint: str) -> None:
    response = await lab.client.post(
        "/v1/embeddings", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
    assert complaint in error["message"]
    assert lab.fakes["cohere"].requests == []


async def test_upstream_errors_keep_their_meaning(lab: Lab) -> None:
    lab.fakes["cohere"].fail_status = 429
    with pytest.raises(openai.RateLimitError):
        await lab.sdk.embeddings.create(model="cohere/embed-v4.0", input=TEXTS)
    lab.fakes["gemini"].api_key = "AIza" + "x" * 35  # the key AI-Lab holds is now refused
    with pytest.raises(openai.APIStatusError) as caught:
        await lab.sdk.embeddings.create(model="gemini/gemini-embedding-001", input=TEXTS)
    assert caught.value.status_code == 502 and caught.value.code == "invalid_api_key"
    assert [r.error_kind for r in lab.records] == ["rate_limit_exceeded", "invalid_api_key"]


async def test_usage_is_counted_per_model_in_prometheus(lab: Lab) -> None:
    labels = {"provider": "ollama", "model": "nomic-embed-text"}
    before = await scrape(lab.client)
    await lab.sdk.embeddings.create(model="ollama/nomic-embed-text", input=TEXTS)
    await lab.sdk.embeddings.create(model="ollama/nomic-embed-text", input="two words")
    after = await scrape(lab.client)
    tokens = "ailab_llm_tokens_total"
    requests = "ailab_llm_requests_total"
    assert (
        value(after, tokens, type="input", **labels) - value(before, tokens, type="input", **labels)
        == WORDS + 2
    )
    assert (
        value(after, requests, outcome="ok", **labels) - value(before, requests, outcome="ok", **labels) == 2
    )
