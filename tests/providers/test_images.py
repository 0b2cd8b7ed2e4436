"""Images reach the models that can see, each backend's own way; the others refuse them before sending.

Pure translations first (a message with an image becomes the backend's wire JSON; one without stays what
it was), then each model family's sight, then each provider against its fake, which decodes the images
from its own wire format: the very bytes must arrive, and nothing at all for a model that cannot see.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ailab.errors import InvalidInput, ModelNotFound
from ailab.providers import anthropic, cohere, gemini, ollama, openai, openai_wire
from ailab.providers.base import (
    ChatMessage,
    ChatRequest,
    ImagePart,
    Provider,
    SupportsVision,
    check_can_see,
)
from ailab.providers.local import LocalDefaults, LocalProvider, default_model_path
from tests.fakes.base import FakeServer, ReceivedImage
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.ollama_server import FakeOllama
from tests.providers.conftest import BACKENDS, Backend, ProviderFactory
from tests.providers.plugin_example import EchoProvider
from tests.support.images import image_bytes, png

PNG = png()
JPEG = image_bytes("JPEG")
B64_PNG = base64.b64encode(PNG).decode()
B64_JPEG = base64.b64encode(JPEG).decode()
IMAGE = ImagePart("image/png", PNG)
SECOND = ImagePart("image/jpeg", JPEG)


def looking(model: str, *images: ImagePart, text: str = "What is this?") -> ChatRequest:
    """A system prompt and a user message showing ``images``."""
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", text, images or (IMAGE,))]
    return ChatRequest(model=model, messages=messages)


# -- the pure translations ------------------------------------------------------------------------


def test_openai_wire_sends_images_as_data_url_parts_and_text_as_before() -> None:
    request = ChatRequest(
        model="gpt-4o",
        messages=[
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Compare these.", (IMAGE, SECOND)),
            ChatMessage("assistant", "Done."),
            ChatMessage("user", "", (IMAGE,)),
        ],
    )
    messages = openai_wire.build_chat_body(request, stream=False)["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief."},  # no images: plain string content, as ever
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_PNG}"}},
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{B64_JPEG}"}},
            ],
        },
        {"role": "assistant", "content": "Done."},
        {  # no text: no empty text part
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_PNG}"}}],
        },
    ]


def test_anthropic_sends_base64_image_blocks_before_the_text() -> None:
    body = anthropic.build_body(looking("claude-sonnet-4-5", IMAGE, SECOND), stream=False)
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64_PNG}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": B64_JPEG}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]


def test_anthropic_merges_consecutive_user_messages_with_images_into_blocks() -> None:
    request = ChatRequest(
        model="claude-sonnet-4-5",
        messages=[
            ChatMessage("user", "First."),
            ChatMessage("user", "", (IMAGE,)),
            ChatMessage("user", "Why?"),
        ],
    )
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64_PNG}}
    assert anthropic.build_body(request, stream=False)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "First."}, image, {"type": "text", "text": "Why?"}],
        }
    ]
    text_only = ChatRequest(model="m", messages=[ChatMessage("user", "a"), ChatMessage("user", "b")])
    assert anthropic.build_body(text_only, stream=False)["messages"] == [
        {"role": "user", "content": "a\n\nb"}
    ]


def test_gemini_sends_inline_data_parts_before_the_text() -> None:
    body = gemini.build_body(looking("gemini-2.0-flash", IMAGE, SECOND))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"inlineData": {"mimeType": "image/png", "data": B64_PNG}},
                {"inlineData": {"mimeType": "image/jpeg", "data": B64_JPEG}},
                {"text": "What is this?"},
            ],
        }
    ]


def test_cohere_sends_image_url_parts() -> None:
    body = cohere.build_body(looking("command-a-vision-07-2025"), stream=False)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_PNG}"}},
            ],
        },
    ]


def test_ollama_sends_bare_base64_on_the_message() -> None:
    body = ollama.build_body(looking("llava:latest", IMAGE, SECOND), stream=False)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},  # no "images" key without images
        {"role": "user", "content": "What is this?", "images": [B64_PNG, B64_JPEG]},
    ]


# -- which models see -------------------------------------------------------------------------------

OPENAI_SIGHT = {
    "gpt-4o": True,
    "gpt-4o-mini-2024-07-18": True,
    "chatgpt-4o-latest": True,
    "gpt-4.1-nano": True,
    "gpt-4-turbo": True,
    "gpt-4-turbo-2024-04-09": True,
    "gpt-5-mini": True,
    "o1": True,
    "o3": True,
    "o4-mini": True,
    "ft:gpt-4o-mini-2024-07-18:acme::abc123": True,
    "gpt-3.5-turbo": False,
    "gpt-35-turbo": False,  # Azure's spelling
    "gpt-4": False,
    "gpt-4-0613": False,
    "gpt-4-32k": False,
    "gpt-4-turbo-preview": False,
    "gpt-4-1106-preview": False,
    "o1-mini": False,
    "o3-mini-2025-01-31": False,
    "ft:gpt-3.5-turbo-0125:acme::abc123": False,
}


@pytest.mark.parametrize(("model", "sees"), OPENAI_SIGHT.items())
def test_openai_models_see_by_family(model: str, sees: bool) -> None:
    assert openai.openai_model_sees(model) is sees


@pytest.mark.parametrize(
    ("model", "sees"),
    [
        ("claude-3-haiku-20240307", True),
        ("claude-3-5-sonnet-latest", True),
        ("claude-sonnet-4-5", True),
        ("claude-opus-4-1-20250805", True),
        ("claude-2.1", False),
        ("claude-2", False),
        ("claude-instant-1.2", False),
    ],
)
def test_claude_3_and_later_see(model: str, sees: bool) -> None:
    assert anthropic.model_sees(model) is sees


@pytest.mark.parametrize(
    ("model", "sees"),
    [
        ("command-a-vision-07-2025", True),
        ("c4ai-aya-vision-32b", True),
        ("command-a-03-2025", False),
        ("command-r-plus-08-2024", False),
    ],
)
def test_only_coheres_vision_models_see(model: str, sees: bool) -> None:
    assert cohere.model_sees(model) is sees


@pytest.mark.parametrize(
    ("show", "sees"),
    [
        ({"capabilities": ["completion", "vision"]}, True),
        ({"capabilities": ["completion", "tools"]}, False),
        ({"details": {"family": "llama"}, "projector_info": {"clip.has_vision_encoder": True}}, True),  # old
        ({"details": {"family": "llama"}}, False),
        (["not", "an", "object"], False),
    ],
)
def test_ollama_show_answer_says_whether_a_model_sees(show: Any, sees: bool) -> None:
    assert ollama.show_sees(show) is sees


async def test_a_provider_without_the_capability_sees_nothing() -> None:
    plugin_provider = EchoProvider()
    assert not isinstance(plugin_provider, SupportsVision)
    with pytest.raises(InvalidInput, match=r"model 'fake/echo-1' cannot read images"):
        await check_can_see(plugin_provider, "echo-1")


async def test_the_embedded_model_refuses_images_without_loading() -> None:
    provider = LocalProvider(default_model_path(), n_threads=1, n_ctx=512, defaults=LocalDefaults())
    try:
        name = provider.model_name
        with pytest.raises(InvalidInput, match=rf"model 'local/{name}' cannot read images") as refused:
            await provider.chat(looking(""))
        assert refused.value.status == 422
        assert provider.loaded_model is None  # refused before the model was even loaded
    finally:
        await provider.aclose()


# -- through each backend's fake ----------------------------------------------------------------------

SEEING_MODEL = {"cohere": "command-a-vision-07-2025", "ollama": "llava:latest"}
BLIND_MODEL = {
    "openai": "gpt-3.5-turbo",
    "azure": "gpt-35-turbo",
    "anthropic": "claude-2.1",
    "cohere": "command-r-plus-08-2024",
    "ollama": "llama3:latest",
}


def seeing_fake(backend: Backend) -> FakeServer:
    """The backend's fake, serving a model that sees too."""
    if backend.name == "cohere":
        return FakeCohere(models=[*FakeCohere.default_models, SEEING_MODEL["cohere"]])
    if backend.name == "ollama":
        return FakeOllama(models=[*FakeOllama.default_models, SEEING_MODEL["ollama"]])
    return backend.fake()


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
async def test_the_image_bytes_reach_each_upstream(backend: Backend, build: ProviderFactory) -> None:
    async with seeing_fake(backend) as fake:
        provider = build(backend.plugin, **backend.settings_for(fake))
        model = SEEING_MODEL.get(backend.name, backend.model)
        assert await provider.can_see(model)
        result = await provider.chat(looking(model, IMAGE, SECOND))
        assert result.content
        chunks = [chunk async for chunk in provider.stream(looking(model))]
        assert chunks[-1].finish_reason
    assert fake.images == [
        ReceivedImage("image/png", PNG),
        ReceivedImage("image/jpeg", JPEG),
        ReceivedImage("image/png", PNG),
    ]


@pytest.mark.parametrize("name", sorted(BLIND_MODEL))
async def test_a_model_that_cannot_see_is_refused_before_anything_is_sent(
    name: str, build: ProviderFactory
) -> None:
    backend = next(b for b in BACKENDS if b.name == name)
    model = BLIND_MODEL[name]
    async with backend.fake() as fake:
        settings = backend.settings_for(fake)
        if name == "azure":
            settings["azure_deployments"] = [model]
        provider: Provider = build(backend.plugin, **settings)
        with pytest.raises(InvalidInput, match=rf"model '{name}/{model}' cannot read images"):
            await provider.chat(looking(model))
        with pytest.raises(InvalidInput, match="cannot read images"):
            async for _ in provider.stream(looking(model)):
                pass
    assert fake.images == []
    # Ollama was asked what the model can do, once; no chat request reached any upstream.
    assert [r.path for r in fake.requests] == (["/api/show"] if name == "ollama" else [])


async def test_ollama_asks_each_model_once_and_an_unknown_one_is_not_found(
    fake_ollama: FakeOllama, build: ProviderFactory
) -> None:
    fake_ollama.models.append("llava:latest")
    provider = build(ollama.PLUGIN, ollama_base_url=fake_ollama.base_url)
    assert await provider.can_see("llava:latest") is True
    assert await provider.can_see("llava:latest") is True
    assert await provider.can_see("qwen2.5:0.5b") is False
    shows = [r.json for r in fake_ollama.requests if r.path == "/api/show"]
    assert shows == [{"model": "llava:latest"}, {"model": "qwen2.5:0.5b"}]
    with pytest.raises(ModelNotFound):
        await provider.can_see("never-pulled")
