"""Per-service key validation: good keys pass, bad ones get 422 saying what was expected, never the key."""

from __future__ import annotations

import secrets
import string

import httpx
import pytest

from ailab.errors import InvalidInput, NotFound
from ailab.providers.credentials import CredentialFormat, mask, validate
from ailab.providers.plugins import Plugins

ALNUM = string.ascii_letters + string.digits
PLUGINS = Plugins.load()  # the installed plugins declare their keys' formats


def form_of(service: str) -> tuple[str, CredentialFormat]:
    plugin = PLUGINS.get(service)
    assert plugin.credential is not None
    return plugin.name, plugin.credential


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


AZURE = {"endpoint": "https://my-resource.openai.azure.com", "deployment": "gpt-4o-mini"}

GOOD = [
    ("openai", "sk-" + rand(48), {}),
    ("openai", "sk-proj-" + rand(60) + "-_" + rand(60), {}),
    ("openai", "sk-svcacct-" + rand(40), {"base_url": "https://proxy.example.com/v1"}),
    ("anthropic", "sk-ant-api03-" + rand(80) + "-" + rand(12) + "AA", {}),
    ("gemini", "AIza" + rand(33) + "-_", {}),
    ("google", "AIza" + rand(35), {}),
    ("azure", rand(32, "0123456789abcdef"), AZURE),
    ("azure", rand(84), {**AZURE, "api_version": "2024-10-01-preview"}),
    ("azure", rand(84), {**AZURE, "deployment": "gpt-4o,gpt-4o-mini"}),
    ("cohere", rand(40), {}),
    ("huggingface", "hf_" + rand(34), {}),
    ("ollama", "", {"base_url": "http://127.0.0.1:11434"}),
    ("ollama", "my-proxy-token", {"base_url": "https://ollama.example.com:443"}),
    ("openai-compat", "", {"base_url": "http://localhost:8000/v1"}),
    ("openai-compat", "token-" + rand(10), {"base_url": "http://10.0.0.5:1234/v1"}),
]

BAD = [
    ("openai", "sk-short", {}, "expected an OpenAI key"),
    ("openai", "pk-" + rand(48), {}, "expected an OpenAI key"),
    ("openai", "sk-" + rand(20) + " " + rand(20), {}, "expected an OpenAI key"),
    ("openai", "sk-ant-api03-" + rand(80), {}, "looks like an Anthropic key"),
    ("openai", "", {}, "api_key is required"),
    ("openai", "sk-" + rand(48), {"base_url": "ftp://example.com"}, "base_url must be an http"),
    ("anthropic", "sk-" + rand(48), {}, "expected an Anthropic key"),
    ("gemini", "AIza" + rand(34), {}, "39 characters starting with 'AIza'"),
    ("gemini", "AIzb" + rand(35), {}, "39 characters starting with 'AIza'"),
    ("azure", rand(31, "0123456789abcdef"), AZURE, "32 hexadecimal characters or 84"),
    ("azure", rand(32, "0123456789abcdef"), {"deployment": "d"}, "config endpoint is required"),
    ("azure", rand(32, "0123456789abcdef"), {"endpoint": AZURE["endpoint"]}, "config deployment is required"),
    (
        "azure",
        rand(32, "0123456789abcdef"),
        {**AZURE, "endpoint": "https://evil.example.com"},
        "https://<resource-name>.openai.azure.com",
    ),
    ("azure", rand(32, "0123456789abcdef"), {**AZURE, "api_version": "latest"}, "2024-10-21"),
    ("azure", rand(32, "0123456789abcdef"), {**AZURE, "deployment": "a b"}, "must be a deployment name"),
    ("cohere", rand(39), {}, "40 letters and digits"),
    ("cohere", rand(20) + "-" + rand(19), {}, "40 letters and digits"),
    ("huggingface", "hf-" + rand(34), {}, "'hf_' followed by"),
    ("huggingface", "hf_" + rand(10), {}, "'hf_' followed by"),
    ("ollama", "", {}, "config base_url is required"),
    ("ollama", "", {"base_url": "127.0.0.1:11434"}, "http:// or https:// URL"),
    ("ollama", "", {"base_url": "http://user:secret@127.0.0.1:11434"}, "must not contain credentials"),
    ("ollama", "tok en", {"base_url": "http://127.0.0.1:11434"}, "printable ASCII without spaces"),
    ("openai-compat", "x", {}, "config base_url is required"),
    (
        "openai-compat",
        "",
        {"base_url": "http://h:1/v1", "endpoint": "x"},
        "unknown config setting 'endpoint'",
    ),
    ("cohere", rand(2000), {}, "longer than"),
]


def ids(cases: list[tuple[object, ...]]) -> list[str]:
    """Stable test ids (the keys are random: parallel workers must collect the same tests)."""
    return [f"{case[0]}-{n}" for n, case in enumerate(cases)]


@pytest.mark.parametrize(("service", "key", "config"), GOOD, ids=ids(GOOD))
def test_good_keys_pass(service: str, key: str, config: dict[str, str]) -> None:
    cleaned_key, cleaned_config = validate(*form_of(service), f"  {key}\n", config)
    assert cleaned_key == key
    assert cleaned_config == {k: v.rstrip("/") for k, v in config.items()}


@pytest.mark.parametrize(("service", "key", "config", "expected"), BAD, ids=ids(BAD))
def test_bad_keys_say_what_was_expected(
    service: str, key: str, config: dict[str, str], expected: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(*form_of(service), key, config)
    assert expected in caught.value.message
    if key:
        assert key not in caught.value.message


def test_aliases_and_unknown_services() -> None:
    assert PLUGINS.canonical("Google") == "gemini"
    assert PLUGINS.canonical("OPENAI") == "openai"
    assert PLUGINS.canonical("openai_compat") == "openai-compat"
    assert PLUGINS.canonical("mistral") is None
    with pytest.raises(NotFound) as caught:
        PLUGINS.get("mistral")
    assert "local" not in PLUGINS.keyed()  # the embedded model takes no key
    for name in PLUGINS.keyed():
        assert name in caught.value.message


def test_a_url_given_as_the_ollama_key_becomes_its_base_url() -> None:
    key, config = validate(*form_of("ollama"), "http://127.0.0.1:11434/", {})
    assert key == ""
    assert config == {"base_url": "http://127.0.0.1:11434"}


def test_mask_shows_the_last_four_characters_only() -> None:
    key = "sk-" + rand(48)
    assert mask(key) == "••••" + key[-4:]
    assert mask("short-tok") == "••••"
    assert mask("") is None


@pytest.mark.parametrize(
    ("service", "key", "config", "expected"), [BAD[i] for i in (0, 7, 10, 14)], ids=["0", "7", "10", "14"]
)
async def test_api_answers_422_without_echoing_the_key_and_stores_nothing(
    client: httpx.AsyncClient, service: str, key: str, config: dict[str, str], expected: str
) -> None:
    r = await client.post("/api-keys", json={"service_name": service, "api_key": key, "config": config})
    assert r.status_code == 422
    assert expected in r.json()["detail"]
    assert key not in r.text
    listed = (await client.get("/api-keys")).json()
    assert listed["configured_services"] == []


async def test_api_schema_errors_do_not_echo_the_key(client: httpx.AsyncClient) -> None:
    key = "sk-" + rand(48)
    # A wrongly typed config makes pydantic reject the body; its error must not carry the input.
    r = await client.post("/api-keys", json={"service_name": "openai", "api_key": key, "config": {"a": [1]}})
    assert r.status_code == 422
    assert key not in r.text
    r = await client.post("/api-keys", json={"service_name": "openai", "api_key": key * 100})
    assert r.status_code == 422
    assert key not in r.text


async def test_unknown_service_lists_the_supported_ones(client: httpx.AsyncClient) -> None:
    r = await client.post("/api-keys", json={"service_name": "mistral", "api_key": "x" * 30})
    assert r.status_code == 404
    assert "openai" in r.json()["detail"]
    assert "azure" in r.json()["detail"]
    for method, path in (("POST", "/api-keys/mistral/test"), ("DELETE", "/api-keys/mistral")):
        r = await client.request(method, path)
        assert r.status_code == 404
        assert "supported services: anthropic, azure" in r.json()["detail"]
