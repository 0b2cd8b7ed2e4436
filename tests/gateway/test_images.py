"""Images through ``/v1/chat/completions`` with the official SDK: an ``image_url`` part (a data URL)
reaches Anthropic, Gemini and Ollama in their own wire formats and an OpenAI-compatible upstream as sent;
a model that cannot see, a remote URL or broken image data are answered 400 in OpenAI's shape."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from ailab.config import Settings
from tests.conftest import AppClientFactory
from tests.fakes.base import DEFAULT_REPLY, ReceivedImage
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.conftest import Lab, translated_lab
from tests.support.images import image_bytes, png

PNG = png()
WEBP = image_bytes("WEBP")
LOCAL = "local/smollm2-135m-instruct"


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def showing(*urls: str, text: str = "What is in the picture?") -> list[dict[str, Any]]:
    """One user message with ``text`` and an ``image_url`` part per URL."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}]


@pytest.fixture
async def lab(app_client: AppClientFactory, settings: Settings, upstream: FakeOpenAI) -> AsyncIterator[Lab]:
    """The app with anthropic, gemini, ollama (llava sees, llama3 does not) and openai-compat on fakes."""
    async with translated_lab(
        app_client, settings, upstream, ollama_models=["llama3:latest", "llava:latest"]
    ) as lab:
        yield lab


SEEING = ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.0-flash", "ollama/llava:latest"]


@pytest.mark.parametrize("model", SEEING)
async def test_an_image_reaches_a_translated_backend_in_its_own_format(lab: Lab, model: str) -> None:
    fake = lab.fakes[model.split("/", maxsplit=1)[0]]
    answer = await lab.sdk.chat.completions.create(model=model, messages=showing(data_url(PNG)))  # type: ignore[arg-type]
    assert answer.choices[0].message.content == DEFAULT_REPLY
    stream = await lab.sdk.chat.completions.create(
        model=model,
        messages=showing(data_url(WEBP, "image/webp")),  # type: ignore[arg-type]
        stream=True,
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == DEFAULT_REPLY
    assert fake.images == [ReceivedImage("image/png", PNG), ReceivedImage("image/webp", WEBP)]


async def test_the_media_type_is_read_from_the_bytes(lab: Lab) -> None:
    # OpenAI takes a PNG labelled image/jpeg; Anthropic would refuse the mismatch, so it is put right.
    await lab.sdk.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=showing(data_url(PNG, "image/jpeg")),  # type: ignore[arg-type]
    )
    assert lab.fakes["anthropic"].images == [ReceivedImage("image/png", PNG)]


async def test_images_are_forwarded_to_an_openai_compatible_upstream_as_sent(lab: Lab) -> None:
    upstream = lab.fakes["openai-compat"]
    messages = showing(data_url(PNG), "https://example.com/cat.png")
    messages[1]["content"][1]["image_url"]["detail"] = "low"
    answer = await lab.sdk.chat.completions.create(model="openai-compat/echo", messages=messages)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "echo: What is in the picture?"
    # Pass-through: the very request, only the model renamed; a remote URL is the upstream's to fetch.
    assert upstream.last.json == {"model": "echo", "messages": messages}
    assert upstream.images == [ReceivedImage("image/png", PNG)]


@pytest.mark.parametrize("model", ["ollama/llama3:latest", LOCAL])
async def test_a_model_that_cannot_see_answers_400_naming_it(lab: Lab, model: str) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError, match=f"model '{model}' cannot read images") as refused:
            await lab.sdk.chat.completions.create(model=model, messages=showing(data_url(PNG)), stream=stream)  # type: ignore[call-overload]
        assert refused.value.code == "invalid_request"
    ollama = lab.fakes["ollama"]
    assert ollama.images == [] and not any(r.path == "/api/chat" for r in ollama.requests)


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        (showing("https://example.com/cat.png"), "AI-Lab does not fetch URLs"),
        (showing("data:image/png;base64,%%%not-base64%%%"), "not valid base64"),
        (showing(data_url(b"just some text, no image")), "must be a PNG, JPEG, WebP or GIF"),
        (showing("data:text/plain;base64,aGVsbG8="), "must be a base64 data URL"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": "data:image/png;base64,AA=="}]}],
            "image_url",  # the part's shape: image_url must be an object with a url
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": {"url": data_url(PNG)}}],
                },
                {"role": "user", "content": "And?"},
            ],
            "only a user's message can carry images",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
                }
            ],
            "only text and image_url content parts",
        ),
    ],
    ids=[
        "remote-url",
        "bad-base64",
        "not-an-image",
        "not-image-data-url",
        "malformed-part",
        "assistant",
        "audio",
    ],
)
async def test_bad_image_input_answers_400_in_openais_shape(
    lab: Lab, messages: list[dict[str, Any]], says: str
) -> None:
    answer = await lab.client.post(
        "/v1/chat/completions", json={"model": "anthropic/claude-sonnet-4-5", "messages": messages}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert says in error["message"]
    assert error["type"] == "invalid_request_error"
    assert lab.fakes["anthropic"].requests == []


async def test_a_pipeline_passes_images_on_and_its_blind_model_refuses_them(lab: Lab) -> None:
    # pipeline/direct answers with the default model, the embedded one, which cannot see.
    answer = await lab.client.post(
        "/v1/chat/completions", json={"model": "pipeline/direct", "messages": showing(data_url(PNG))}
    )
    assert answer.status_code == 422, answer.text
    assert f"model '{LOCAL}' cannot read images" in answer.json()["error"]["message"]
