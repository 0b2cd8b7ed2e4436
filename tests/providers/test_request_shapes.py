"""What each provider puts on the wire: paths, auth headers and body fields, as its fake received them."""

from __future__ import annotations

from ailab.providers import anthropic, azure, cohere, gemini, huggingface, ollama, openai, openai_compat
from ailab.providers.base import ChatMessage, ChatRequest
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeAzureOpenAI, FakeHuggingFace, FakeOpenAI
from tests.providers.conftest import ProviderFactory, ask

CONVERSATION = [
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello!"),
    ChatMessage("user", "Name a colour."),
]


def conversation(model: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(model=model, messages=list(CONVERSATION), **kwargs)  # type: ignore[arg-type]


async def drain(provider: object, request: ChatRequest) -> None:
    async for _ in provider.stream(request):  # type: ignore[attr-defined]
        pass


async def test_openai_request_shape(fake_openai: FakeOpenAI, build: ProviderFactory) -> None:
    provider = build(openai.PLUGIN, openai_base_url=fake_openai.base_url, openai_api_key=fake_openai.api_key)
    request = conversation(
        "gpt-4o", max_tokens=50, temperature=0.2, top_p=0.9, stop=["\n\n"], extra={"seed": 7}
    )
    await provider.chat(request)
    sent = fake_openai.last
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.header("authorization") == f"Bearer {fake_openai.api_key}"
    assert sent.json == {
        "seed": 7,
        "model": "gpt-4o",
        "messages": [{"role": m.role, "content": m.content} for m in CONVERSATION],
        "stream": False,
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n"],
    }
    await drain(provider, ask("gpt-4o"))
    assert fake_openai.last.json["stream"] is True
    assert fake_openai.last.json["stream_options"] == {"include_usage": True}
    await provider.list_models()
    assert (fake_openai.last.method, fake_openai.last.path) == ("GET", "/v1/models")
    assert fake_openai.last.header("authorization") == f"Bearer {fake_openai.api_key}"


async def test_openai_compat_without_key_sends_no_auth(
    fake_openai_compat: FakeOpenAI, build: ProviderFactory
) -> None:
    provider = build(openai_compat.PLUGIN, openai_compat_base_url=fake_openai_compat.base_url)
    assert [m.id for m in await provider.list_models()] == ["Qwen/Qwen2.5-0.5B-Instruct"]
    result = await provider.chat(ask("Qwen/Qwen2.5-0.5B-Instruct", max_tokens=5))
    assert result.usage is not None
    assert fake_openai_compat.last.path == "/v1/chat/completions"
    assert fake_openai_compat.last.header("authorization") is None
    assert fake_openai_compat.last.json["max_tokens"] == 5  # the portable field, not OpenAI's newer one


async def test_huggingface_request_shape(fake_huggingface: FakeHuggingFace, build: ProviderFactory) -> None:
    key = fake_huggingface.api_key
    provider = build(
        huggingface.PLUGIN, huggingface_base_url=fake_huggingface.base_url, huggingface_api_key=key
    )
    await provider.chat(ask("meta-llama/Llama-3.1-8B-Instruct"))
    assert fake_huggingface.last.path == "/v1/chat/completions"
    assert fake_huggingface.last.header("authorization") == f"Bearer {key}"
    assert fake_huggingface.last.json["model"] == "meta-llama/Llama-3.1-8B-Instruct"


async def test_azure_request_shape(fake_azure: FakeAzureOpenAI, build: ProviderFactory) -> None:
    provider = build(
        azure.PLUGIN,
        azure_base_url=fake_azure.base_url,
        azure_api_key=fake_azure.api_key,
        azure_deployments=["gpt4o-prod", "mini-dev"],
        azure_api_version="2024-10-21",
    )
    assert [m.id for m in await provider.list_models()] == ["gpt4o-prod", "mini-dev"]
    assert fake_azure.last.path == "/openai/models"
    assert fake_azure.last.query == {"api-version": "2024-10-21"}
    await drain(provider, ask("mini-dev"))
    sent = fake_azure.last
    assert (sent.method, sent.path) == ("POST", "/openai/deployments/mini-dev/chat/completions")
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.header("api-key") == fake_azure.api_key
    assert sent.header("authorization") is None
    assert sent.json["stream_options"] == {"include_usage": True}


async def test_anthropic_request_shape(fake_anthropic: FakeAnthropic, build: ProviderFactory) -> None:
    key = fake_anthropic.api_key
    provider = build(anthropic.PLUGIN, anthropic_base_url=fake_anthropic.base_url, anthropic_api_key=key)
    await provider.chat(conversation("claude-3-5-haiku-latest", temperature=0.5, stop=["END"]))
    sent = fake_anthropic.last
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.header("x-api-key") == key
    assert sent.header("anthropic-version") == "2023-06-01"
    assert sent.header("authorization") is None
    assert sent.json == {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": anthropic.DEFAULT_MAX_TOKENS,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a colour."},
        ],
        "temperature": 0.5,
        "stop_sequences": ["END"],
    }
    await drain(provider, ask("claude-3-5-haiku-latest", max_tokens=20))
    assert fake_anthropic.last.json["stream"] is True
    assert fake_anthropic.last.json["max_tokens"] == 20
    await provider.list_models()
    assert (fake_anthropic.last.method, fake_anthropic.last.path) == ("GET", "/v1/models")
    assert fake_anthropic.last.header("x-api-key") == key


async def test_gemini_key_only_in_header(fake_gemini: FakeGemini, build: ProviderFactory) -> None:
    key = fake_gemini.api_key
    assert key is not None
    provider = build(gemini.PLUGIN, gemini_base_url=fake_gemini.base_url, gemini_api_key=key)
    await provider.chat(conversation("gemini-2.0-flash", max_tokens=40, temperature=0.1, top_p=0.8))
    await drain(provider, ask("gemini-2.0-flash"))
    await provider.list_models()
    assert len(fake_gemini.requests) == 3
    for sent in fake_gemini.requests:
        assert sent.header("x-goog-api-key") == key
        assert "key" not in sent.query
        assert key not in sent.url
    chat, stream, listing = fake_gemini.requests
    assert chat.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert chat.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Name a colour."}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 40, "temperature": 0.1, "topP": 0.8},
    }
    assert stream.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert stream.query == {"alt": "sse"}
    assert (listing.method, listing.path) == ("GET", "/v1beta/models")


async def test_gemini_lists_only_generating_models(fake_gemini: FakeGemini, build: ProviderFactory) -> None:
    provider = build(gemini.PLUGIN, gemini_base_url=fake_gemini.base_url, gemini_api_key=fake_gemini.api_key)
    models = await provider.list_models()
    assert [m.id for m in models] == ["gemini-2.0-flash", "gemini-2.5-pro"]  # not text-embedding-004
    assert models[0].context_window == 1048576


async def test_cohere_request_shape(fake_cohere: FakeCohere, build: ProviderFactory) -> None:
    key = fake_cohere.api_key
    provider = build(cohere.PLUGIN, cohere_base_url=fake_cohere.base_url, cohere_api_key=key)
    await provider.chat(conversation("command-r-plus-08-2024", max_tokens=30, top_p=0.7))
    sent = fake_cohere.last
    assert (sent.method, sent.path) == ("POST", "/v2/chat")
    assert sent.header("authorization") == f"Bearer {key}"
    assert sent.json == {
        "model": "command-r-plus-08-2024",
        "messages": [{"role": m.role, "content": m.content} for m in CONVERSATION],
        "stream": False,
        "max_tokens": 30,
        "p": 0.7,
    }
    await drain(provider, ask("command-r-plus-08-2024"))
    assert fake_cohere.last.json["stream"] is True
    models = await provider.list_models()
    assert fake_cohere.last.path == "/v1/models"
    assert fake_cohere.last.query["endpoint"] == "chat"
    assert [m.id for m in models] == list(fake_cohere.models)  # the embed model is filtered out
    assert models[0].context_window == 128000


async def test_ollama_request_shape(fake_ollama: FakeOllama, build: ProviderFactory) -> None:
    provider = build(ollama.PLUGIN, ollama_base_url=fake_ollama.base_url)
    await provider.chat(conversation("llama3", max_tokens=12, temperature=0.3))
    sent = fake_ollama.last
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert sent.header("authorization") is None
    assert sent.json == {
        "model": "llama3",
        "messages": [{"role": m.role, "content": m.content} for m in CONVERSATION],
        "stream": False,  # explicit: Ollama streams by default
        "options": {"num_predict": 12, "temperature": 0.3},
    }
    await drain(provider, ask("llama3"))
    assert fake_ollama.last.json["stream"] is True
    assert [m.id for m in await provider.list_models()] == ["llama3:latest", "qwen2.5:0.5b"]
    assert fake_ollama.last.path == "/api/tags"


async def test_ollama_sends_a_key_when_set(fake_ollama: FakeOllama, build: ProviderFactory) -> None:
    fake_ollama.api_key = "proxy-token-123456"
    provider = build(ollama.PLUGIN, ollama_base_url=fake_ollama.base_url, ollama_api_key="proxy-token-123456")
    assert len(await provider.list_models()) == 2
    assert fake_ollama.last.header("authorization") == "Bearer proxy-token-123456"
