"""Embeddings without HTTP: each backend's request builder and answer parser, and the shared batching."""

from __future__ import annotations

import base64
import struct

import pytest

from ailab.errors import ModelNotFound, ProviderRejected, ProviderUnavailable
from ailab.providers import cohere, gemini, huggingface, ollama, openai_wire
from ailab.providers.anthropic import AnthropicProvider
from ailab.providers.base import SupportsEmbeddings, Usage
from ailab.providers.embeddings import batches, vector, vectors
from ailab.providers.local import LocalProvider
from ailab.providers.plugins import discover
from tests.fakes.base import bag_of_words_vector, float32_base64


def test_batches_keep_the_order_and_the_limits() -> None:
    texts = [f"text {i}" for i in range(7)]
    assert list(batches(texts, 3)) == [texts[0:3], texts[3:6], texts[6:7]]
    assert list(batches(texts, 100)) == [texts]
    assert list(batches([], 3)) == []


def test_batches_by_characters_send_a_long_input_alone() -> None:
    texts = ["aaaa", "bbbb", "c" * 20, "dd", "ee"]
    assert list(batches(texts, 100, max_chars=9)) == [["aaaa", "bbbb"], ["c" * 20], ["dd", "ee"]]


def test_a_vector_is_numbers_or_little_endian_float32_base64() -> None:
    assert vector("x", [1, 0.5, -2]) == [1.0, 0.5, -2.0]
    encoded = base64.b64encode(struct.pack("<3f", 0.25, -1.5, 3.0)).decode()
    assert vector("x", encoded) == [0.25, -1.5, 3.0]
    for broken in ([], None, "not base64!", ["a", "b"], {"values": [1.0]}):
        with pytest.raises(
            ProviderUnavailable, match="x answered an embedding that is not a list of numbers"
        ):
            vector("x", broken)
    with pytest.raises(ProviderUnavailable, match="unexpected embeddings shape"):
        vectors("x", {"float": []})


def test_openai_body_asks_for_floats_and_the_dimensions() -> None:
    assert openai_wire.build_embeddings_body("text-embedding-3-small", ["a", "b"]) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
    }
    assert openai_wire.build_embeddings_body("m", ["a"], 256)["dimensions"] == 256


def test_openai_answer_is_read_in_index_order() -> None:
    answer = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": float32_base64([1.0, 0.0])},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    result = openai_wire.parse_embeddings(answer, "requested", "openai")
    assert result.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert result.model == "text-embedding-3-small"
    assert result.usage == Usage(prompt_tokens=5)
    assert openai_wire.parse_embeddings({"data": []}, "requested").usage is None
    with pytest.raises(ProviderUnavailable, match="vllm answered with an unexpected embeddings shape"):
        openai_wire.parse_embeddings({"error": "no"}, "m", "vllm")


def test_gemini_batch_names_the_model_in_every_request() -> None:
    body = gemini.build_embed_body("gemini-embedding-001", ["one", "two"], 128)
    assert body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "one"}]},
                "outputDimensionality": 128,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "two"}]},
                "outputDimensionality": 128,
            },
        ]
    }
    assert "outputDimensionality" not in gemini.build_embed_body("m", ["x"])["requests"][0]
    # A name that would change the URL's path is quoted as one segment.
    assert gemini.build_embed_body("../files", ["x"])["requests"][0]["model"] == "models/..%2Ffiles"


def test_gemini_answer_has_no_usage_unless_it_counts() -> None:
    result = gemini.parse_embed_response({"embeddings": [{"values": [0.5]}, {"values": [1, 2]}]}, "m")
    assert result.vectors == [[0.5], [1.0, 2.0]]
    assert result.usage is None
    counted = gemini.parse_embed_response({"embeddings": [], "usageMetadata": {"promptTokenCount": 9}}, "m")
    assert counted.usage == Usage(prompt_tokens=9)
    with pytest.raises(ProviderUnavailable, match="gemini"):
        gemini.parse_embed_response({"embedding": {"values": [1.0]}}, "m")


def test_cohere_body_and_billed_units() -> None:
    assert cohere.build_embed_body("embed-v4.0", ["a"]) == {
        "model": "embed-v4.0",
        "texts": ["a"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert cohere.build_embed_body("embed-v4.0", ["a"], 512)["output_dimension"] == 512
    answer = {"embeddings": {"float": [[0.1], [0.2]]}, "meta": {"billed_units": {"input_tokens": 4}}}
    result = cohere.parse_embed_response(answer, "embed-v4.0")
    assert result.vectors == [[0.1], [0.2]] and result.usage == Usage(prompt_tokens=4)
    with pytest.raises(ProviderUnavailable, match="cohere"):
        cohere.parse_embed_response({"embeddings": [[0.1]]}, "m")


def test_ollama_body_and_prompt_eval_count() -> None:
    assert ollama.build_embed_body("nomic-embed-text", ["a", "b"]) == {
        "model": "nomic-embed-text",
        "input": ["a", "b"],
    }
    assert ollama.build_embed_body("m", ["a"], 64)["dimensions"] == 64
    result = ollama.parse_embed_response(
        {"model": "m", "embeddings": [[1.0, 0.0]], "prompt_eval_count": 3}, "m"
    )
    assert result.vectors == [[1.0, 0.0]] and result.usage == Usage(prompt_tokens=3)
    assert ollama.parse_embed_response({"embeddings": [[1.0]]}, "m").usage is None
    with pytest.raises(ProviderUnavailable, match="this model does not support embeddings"):
        ollama.parse_embed_response({"error": "this model does not support embeddings"}, "m")


def test_huggingface_router_is_told_apart_from_a_server_of_your_own() -> None:
    assert huggingface.uses_router("https://router.huggingface.co/v1")
    assert not huggingface.uses_router("https://abc.us-east-1.aws.endpoints.huggingface.cloud/v1")
    assert not huggingface.uses_router("http://127.0.0.1:8080/v1")
    url = huggingface.feature_extraction_url("https://router.huggingface.co/v1", "BAAI/bge-small-en-v1.5")
    assert (
        url
        == "https://router.huggingface.co/hf-inference/models/BAAI/bge-small-en-v1.5/pipeline/feature-extraction"
    )
    for hostile in ("../../api/whoami", "a/b/c", "BAAI/../x", "x?y=1", ""):
        with pytest.raises(ModelNotFound):
            huggingface.feature_extraction_url("https://router.huggingface.co/v1", hostile)


def test_huggingface_feature_extraction_answer() -> None:
    assert huggingface.build_feature_extraction_body(["a"]) == {"inputs": ["a"]}
    result = huggingface.parse_feature_extraction([[0.5, 0.5], [1, 0]], "m")
    assert result.vectors == [[0.5, 0.5], [1.0, 0.0]] and result.usage is None
    with pytest.raises(ProviderRejected, match="'bert-base-uncased' answers a vector per token"):
        huggingface.parse_feature_extraction([[[0.1], [0.2]]], "bert-base-uncased")


def test_which_backends_embed() -> None:
    plugins = discover()
    offering = {name for name, plugin in plugins.items() if plugin.capabilities.embeddings}
    assert offering == {"openai", "azure", "openai-compat", "huggingface", "gemini", "cohere", "ollama"}
    # The protocol is what the gateway checks: Anthropic has no embeddings API, the embedded chat model
    # (SmolLM2, not an embedding GGUF) makes none.
    assert not issubclass(AnthropicProvider, SupportsEmbeddings)
    assert not issubclass(LocalProvider, SupportsEmbeddings)


def test_the_fakes_vectors_carry_meaning() -> None:
    def cosine(a: str, b: str) -> float:
        return sum(x * y for x, y in zip(bag_of_words_vector(a), bag_of_words_vector(b), strict=True))

    assert bag_of_words_vector("The cat sat") == bag_of_words_vector("the CAT, sat!")
    assert cosine("the cat sat on the mat", "a cat on a mat") > cosine(
        "the cat sat on the mat", "stock prices fell"
    )
    assert sum(x * x for x in bag_of_words_vector("anything at all")) == pytest.approx(1.0)
    assert bag_of_words_vector("", dims=8) == [0.0] * 8
