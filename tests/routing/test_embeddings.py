"""Embeddings through an alias (``POST /v1/embeddings`` with the official SDK): routed as chat is, over
the alias's deployments, then its fallbacks, with its retries and cool-downs; forwarded or translated
per deployment; refused up front when a model of the alias has no embeddings. Each attempt is counted in
``ailab_route_attempts_total`` (scraped from ``/metrics/prometheus``). The files' embedder
(``AILAB_FILES_EMBEDDING_MODEL`` naming an alias) goes the same way."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from ailab.db.repos import files as files_repo
from ailab.errors import InvalidInput
from ailab.providers.registry import GenerationRecord
from ailab.services.routing.router import BACKOFF_S
from tests.fakes.base import bag_of_words_vector
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.conftest import sdk_for
from tests.monitoring.helpers import scrape, value
from tests.routing.conftest import AliasApp, provider_of

TEXTS = ["the cat sat on the mat", "stock prices fell sharply"]
WORDS = 10  # what the fake counts as tokens for TEXTS (its words)
A = "openai-compat/embed-small"  # the deployment at the provider's base URL
FALLBACK = "openai/text-embedding-3-small"
ATTEMPTS = "ailab_route_attempts_total"


def vectors_yaml(b: FakeOpenAI, **extra: Any) -> str:
    """The alias ``vectors`` over ``embed-small`` at ``a`` (first, as the tests draw) and at ``b``."""
    lines = [
        "aliases:",
        "  - name: vectors",
        "    deployments:",
        f"      - {A}",
        f"      - {{model: {A}, base_url: '{b.base_url}'}}",
    ]
    lines += [f"    {key}: {val}" for key, val in extra.items()]
    return "\n".join(lines) + "\n"


def b_key(b: FakeOpenAI) -> str:
    return f"{A}@{b.base_url}"


async def attempts(client: httpx.AsyncClient, deployment: str, outcome: str, alias: str = "vectors") -> float:
    """``ailab_route_attempts_total`` of one alias, deployment and outcome, as ``/metrics`` shows it."""
    return value(await scrape(client), ATTEMPTS, alias=alias, deployment=deployment, outcome=outcome)


@pytest.mark.parametrize(("status", "outcome"), [(500, "retried"), (429, "cooled_down")])
async def test_an_alias_embeds_on_another_deployment_when_one_fails(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI, status: int, outcome: str
) -> None:
    a.fail_status, a.retry_after = status, "30"
    async with alias_app(vectors_yaml(b)) as client:
        records: list[GenerationRecord] = []
        client.services.providers.observers.append(records.append)  # type: ignore[attr-defined]
        sdk = sdk_for(client)
        answer = await sdk.embeddings.create(model="vectors", input=TEXTS, encoding_format="float")
        assert [item.embedding for item in answer.data] == [bag_of_words_vector(t) for t in TEXTS]
        assert answer.model == "vectors"  # as requested, not the deployment's own name
        assert (len(a.requests), len(b.requests)) == (1, 1)
        assert b.last.json == {"model": "embed-small", "input": TEXTS, "encoding_format": "float"}
        assert [(r.provider, r.model, r.prompt_tokens, r.ok) for r in records] == [
            ("alias", "vectors", WORDS, True)
        ]
        assert await attempts(client, A, outcome) == 1
        assert await attempts(client, b_key(b), "ok") == 1

        await sdk.embeddings.create(model="vectors", input=TEXTS)
        # A 500 is one failure of three before a cool-down: a is tried first again. A 429's Retry-After
        # leaves it out at once.
        assert len(a.requests) == (2 if status == 500 else 1)
        assert len(b.requests) == 2
        assert await attempts(client, b_key(b), "ok") == 2
        await sdk.close()


async def test_an_alias_embeds_with_its_fallback_when_every_deployment_fails_and_counts_each_attempt(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI, c: FakeOpenAI
) -> None:
    a.fail_status = b.fail_status = 503
    yaml = vectors_yaml(b, fallbacks=f"[{FALLBACK}]", retries=1, cooldown="{failures: 3, seconds: 60}")
    async with alias_app(yaml) as client:
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        client.services.routing.pacing.sleep = sleep  # type: ignore[attr-defined]
        sdk = sdk_for(client)
        answer = await sdk.embeddings.create(model="vectors", input=TEXTS, encoding_format="float")
        assert answer.model == "vectors"
        assert [item.embedding for item in answer.data] == [bag_of_words_vector(t) for t in TEXTS]
        assert (len(a.requests), len(b.requests), len(c.requests)) == (2, 2, 1)  # two rounds, then c
        assert waits == [BACKOFF_S]  # the backoff between the rounds, as for chat
        assert c.last.json["model"] == "text-embedding-3-small"

        text = await scrape(client)
        assert value(text, ATTEMPTS, alias="vectors", deployment=A, outcome="retried") == 2
        assert value(text, ATTEMPTS, alias="vectors", deployment=b_key(b), outcome="retried") == 2
        assert value(text, ATTEMPTS, alias="vectors", deployment=FALLBACK, outcome="fallback") == 1
        assert value(text, ATTEMPTS, alias="vectors", outcome="ok") == 0

        # Now the fallback fails too: a's and b's third failures start their cool-downs (60 s: too long to
        # wait for another round), then the fallback's failure is the last attempt.
        c.fail_status = 500
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.embeddings.create(model="vectors", input=TEXTS)
        assert caught.value.status_code == 502
        assert "every deployment and fallback of 'vectors' failed" in caught.value.message
        assert (len(a.requests), len(b.requests), len(c.requests)) == (3, 3, 2)
        assert waits == [BACKOFF_S]

        text = await scrape(client)
        for key in (A, b_key(b)):
            assert value(text, ATTEMPTS, alias="vectors", deployment=key, outcome="cooled_down") == 1
            assert value(text, ATTEMPTS, alias="vectors", deployment=key, outcome="retried") == 2
        assert value(text, ATTEMPTS, alias="vectors", deployment=FALLBACK, outcome="failed") == 1
        status = (await client.get("/models/aliases")).json()["items"][0]["status"]
        assert [s["available"] for s in status] == [False, False]  # both cool down
        await sdk.close()


async def test_a_request_the_upstream_refuses_is_not_retried_and_counts_as_rejected(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = 400
    async with alias_app(vectors_yaml(b)) as client:
        sdk = sdk_for(client)
        with pytest.raises(openai.BadRequestError):
            await sdk.embeddings.create(model="vectors", input=TEXTS)
        assert (len(a.requests), b.requests) == (1, [])
        assert await attempts(client, A, "rejected") == 1
        assert await attempts(client, b_key(b), "ok") == 0
        await sdk.close()


async def test_an_alias_over_wires_of_both_kinds_translates_where_it_must(
    alias_app: AliasApp, a: FakeOpenAI
) -> None:
    async with FakeOllama() as ollama:
        yaml = "aliases:\n  - name: mixed\n    deployments: [openai-compat/embed-small, ollama/nomic-embed-text]\n"
        async with alias_app(yaml, ollama_base_url=ollama.base_url) as client:
            sdk = sdk_for(client)
            a.fail_status = 502
            answer = await sdk.embeddings.create(model="mixed", input=TEXTS, encoding_format="float")
            assert answer.model == "mixed"
            assert [item.embedding for item in answer.data] == [bag_of_words_vector(t) for t in TEXTS]
            assert [r.path for r in ollama.requests] == ["/api/embed"]
            assert ollama.last.json["model"] == "nomic-embed-text"
            assert await attempts(client, "openai-compat/embed-small", "retried", alias="mixed") == 1
            assert await attempts(client, "ollama/nomic-embed-text", "ok", alias="mixed") == 1

            # Token arrays reach only OpenAI's wire, and a request may land on Ollama: refused up front.
            with pytest.raises(openai.BadRequestError, match="token arrays reach only providers"):
                await sdk.embeddings.create(model="mixed", input=[[1, 2, 3]])
            assert (len(a.requests), len(ollama.requests)) == (1, 1)
            await sdk.close()


@pytest.mark.parametrize(
    ("alias", "lacking"),
    [("tiny", "local/smollm2-135m-instruct"), ("mostly", "local/smollm2-135m-instruct")],
)
async def test_an_alias_with_a_model_without_embeddings_is_a_bad_request_naming_it(
    alias_app: AliasApp, a: FakeOpenAI, alias: str, lacking: str
) -> None:
    yaml = (
        "aliases:\n"
        "  - name: tiny\n    deployments: [local/smollm2-135m-instruct]\n"
        "  - name: mostly\n    deployments: [openai-compat/embed-small]\n"
        "    fallbacks: [local/smollm2-135m-instruct]\n"
    )
    async with alias_app(yaml) as client:
        sdk = sdk_for(client)
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.embeddings.create(model=alias, input=TEXTS)
        message = caught.value.message
        assert f"'{alias}' is a model alias" in message
        assert f"{lacking} (local has no embeddings API)" in message
        assert "openai, openai-compat" in message  # the providers that have, to choose from
        assert caught.value.code == "invalid_request"
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"
        assert a.requests == []  # nothing was sent
        assert value(await scrape(client), ATTEMPTS, alias=alias) == 0  # no attempt was made
        await sdk.close()


async def test_files_embed_their_chunks_through_an_alias(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = 500
    async with alias_app(vectors_yaml(b), files_embedding_model="vectors") as client:
        text = b"The notice period is ninety days."
        file = (await client.post("/files", files={"file": ("notes.txt", text)})).json()
        await client.services.files.wait_read(file["id"])  # type: ignore[attr-defined]
        assert [r.json["input"] for r in b.requests] == [[text.decode()]]
        stored = await client.services.db.run_read(  # type: ignore[attr-defined]
            files_repo.file_embeddings, [file["id"]], "vectors"
        )
        assert [idx for _file, idx, _vector in stored] == [0]
        assert await attempts(client, A, "retried") == 1
        assert await attempts(client, b_key(b), "ok") == 1

        hits = (await client.get("/files/search", params={"q": "notice period"})).json()["items"]
        assert hits[0]["file_id"] == file["id"]
        assert b.last.json["input"] == ["notice period"]  # the question's vector, through the alias too
        assert await attempts(client, b_key(b), "ok") == 2


async def test_an_alias_with_a_model_without_embeddings_embeds_nothing_and_says_which(
    alias_app: AliasApp, a: FakeOpenAI
) -> None:
    yaml = "aliases:\n  - name: mixed\n    deployments: [openai-compat/embed-small, anthropic/claude-3-5-haiku]\n"
    async with alias_app(yaml) as client:
        embedder = provider_of(client, "mixed")
        with pytest.raises(InvalidInput, match="models without embeddings: anthropic/claude-3-5-haiku"):
            await embedder.embed("mixed", TEXTS)  # type: ignore[attr-defined]
        assert a.requests == []
