"""What a credential of each service looks like, checked before anything is stored.

One :class:`ServiceSpec` per service (the names are the provider names): the shape of its key, whether a
key is required, and the non-secret settings (``config``) it takes, such as Azure's endpoint and
deployment or Ollama's base URL. Messages say what was expected and never repeat the offending key.
Config values are stored in plaintext, so URLs carrying credentials (``https://user:pass@host``) are
refused: a secret belongs in the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ailab.errors import InvalidInput, NotFound

MAX_KEY_LENGTH = 1024
MAX_CONFIG_VALUE_LENGTH = 512
ALIASES = {"google": "gemini", "openai_compat": "openai-compat", "hugging-face": "huggingface"}

Check = Callable[[str], str | None]  # returns an error message, or None when the value is fine


def _http_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "must be a URL like http://host:port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, like http://127.0.0.1:11434"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@); put the secret in api_key"
    if parts.query or parts.fragment:
        return "must not have a query string or fragment"
    if port == 0:
        return "has an invalid port"
    return None


_AZURE_ENDPOINT = re.compile(r"^https://[a-z0-9][a-z0-9-]{0,62}\.openai\.azure\.com/?$", re.IGNORECASE)
_AZURE_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AZURE_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _azure_endpoint(value: str) -> str | None:
    if _AZURE_ENDPOINT.match(value):
        return None
    return "must be your resource's endpoint, https://<resource-name>.openai.azure.com"


def _azure_deployment(value: str) -> str | None:
    if all(_AZURE_DEPLOYMENT.match(part.strip()) for part in value.split(",")):
        return None
    return (
        "must be a deployment name (letters, digits, '.', '_', '-'; at most 64 characters), "
        "or several separated by commas"
    )


def _azure_api_version(value: str) -> str | None:
    if _AZURE_API_VERSION.match(value):
        return None
    return "must look like 2024-10-21 or 2024-10-01-preview"


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One non-secret setting of a service."""

    check: Check
    required: bool = False


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """The credential a service takes."""

    name: str
    key_pattern: re.Pattern[str] | None  # None: any printable value without spaces
    expected: str  # what a key looks like, for the error message
    key_required: bool = True
    config: Mapping[str, ConfigField] = field(default_factory=dict)
    # Other services' key shapes that users paste here by mistake: (pattern, hint).
    mistakes: tuple[tuple[re.Pattern[str], str], ...] = ()


_BASE_URL_OPTIONAL = {"base_url": ConfigField(_http_url)}
_BASE_URL_REQUIRED = {"base_url": ConfigField(_http_url, required=True)}
_ANTHROPIC = re.compile(r"^sk-ant-")

SPECS: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "openai",
            re.compile(r"^sk-[A-Za-z0-9_-]{20,}$"),
            "an OpenAI key: 'sk-' (or 'sk-proj-') followed by at least 20 letters, digits, '-' or '_'",
            config=_BASE_URL_OPTIONAL,
            mistakes=((_ANTHROPIC, "this looks like an Anthropic key; store it as 'anthropic'"),),
        ),
        ServiceSpec(
            "anthropic",
            re.compile(r"^sk-ant-[A-Za-z0-9_-]{20,}$"),
            "an Anthropic key: 'sk-ant-' followed by at least 20 letters, digits, '-' or '_'",
            config=_BASE_URL_OPTIONAL,
        ),
        ServiceSpec(
            "gemini",
            re.compile(r"^AIza[0-9A-Za-z_-]{35}$"),
            "a Google AI Studio key: 39 characters starting with 'AIza'",
            config=_BASE_URL_OPTIONAL,
        ),
        ServiceSpec(
            "azure",
            re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9A-Za-z]{84})$"),
            "an Azure OpenAI key: 32 hexadecimal characters or 84 letters and digits",
            config={
                "endpoint": ConfigField(_azure_endpoint, required=True),
                "deployment": ConfigField(_azure_deployment, required=True),
                "api_version": ConfigField(_azure_api_version),
            },
        ),
        ServiceSpec(
            "cohere",
            re.compile(r"^[A-Za-z0-9]{40}$"),
            "a Cohere key: 40 letters and digits",
            config=_BASE_URL_OPTIONAL,
        ),
        ServiceSpec(
            "huggingface",
            re.compile(r"^hf_[A-Za-z0-9]{30,}$"),
            "a Hugging Face token: 'hf_' followed by at least 30 letters and digits",
            config=_BASE_URL_OPTIONAL,
        ),
        ServiceSpec(
            "ollama",
            None,
            "an optional key (printable, no spaces) with config base_url http(s)://host:port",
            key_required=False,
            config=_BASE_URL_REQUIRED,
        ),
        ServiceSpec(
            "openai-compat",
            None,
            "an optional key (printable, no spaces) with config base_url, e.g. http://127.0.0.1:8000/v1",
            key_required=False,
            config=_BASE_URL_REQUIRED,
        ),
    )
}
SUPPORTED_SERVICES = tuple(SPECS)
_PRINTABLE_NO_SPACE = re.compile(r"^[\x21-\x7e]+$")


def canonical_service(name: str) -> str | None:
    """The service a user-given name means (case-insensitive, aliases like 'google'), or None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in SPECS else None


def unknown_service_message(name: str) -> str:
    """The error for a service nobody supports, listing the supported ones (the name is shortened)."""
    shown = name if len(name) <= 40 else name[:40] + "..."
    supported = ", ".join(SUPPORTED_SERVICES)
    return f"unknown service {shown!r}; supported services: {supported} ('google' = gemini)"


def spec_for(name: str) -> ServiceSpec:
    """The spec of ``name``; :class:`NotFound` listing the supported services otherwise."""
    service = canonical_service(name)
    if service is None:
        raise NotFound(unknown_service_message(name))
    return SPECS[service]


def validate(spec: ServiceSpec, api_key: str, config: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The cleaned key and config, or :class:`InvalidInput` saying what was expected.

    For Ollama and OpenAI-compatible servers a URL given as the key (as the previous version stored it)
    is taken as ``base_url``.
    """
    key = api_key.strip()
    cleaned: dict[str, str] = {}
    for name, raw in config.items():
        if name not in spec.config:
            allowed = ", ".join(spec.config) or "none"
            raise InvalidInput(f"{spec.name}: unknown config setting {name[:40]!r}; allowed: {allowed}")
        value = str(raw).strip()
        if not value:
            continue
        if len(value) > MAX_CONFIG_VALUE_LENGTH:
            raise InvalidInput(f"{spec.name}: config {name} is longer than {MAX_CONFIG_VALUE_LENGTH} chars")
        problem = spec.config[name].check(value)
        if problem:
            raise InvalidInput(f"{spec.name}: config {name} {problem}")
        cleaned[name] = value.rstrip("/") if name in ("base_url", "endpoint") else value
    takes_url = not spec.key_required and "base_url" in spec.config and "base_url" not in cleaned
    if takes_url and key.startswith(("http://", "https://")) and _http_url(key) is None:
        cleaned["base_url"], key = key.rstrip("/"), ""
    missing = [name for name, f in spec.config.items() if f.required and name not in cleaned]
    if missing:
        raise InvalidInput(f"{spec.name}: config {', '.join(missing)} is required")
    if not key:
        if spec.key_required:
            raise InvalidInput(f"{spec.name}: api_key is required: expected {spec.expected}")
        return key, cleaned
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"{spec.name}: the key is longer than {MAX_KEY_LENGTH} characters")
    for pattern, hint in spec.mistakes:
        if pattern.match(key):
            raise InvalidInput(f"{spec.name}: {hint}")
    if spec.key_pattern is not None:
        if not spec.key_pattern.match(key):
            raise InvalidInput(f"{spec.name}: the key does not look right: expected {spec.expected}")
    elif not _PRINTABLE_NO_SPACE.match(key):
        raise InvalidInput(f"{spec.name}: the key must be printable ASCII without spaces")
    return key, cleaned


def mask(api_key: str | None) -> str | None:
    """The key as shown in lists: its last 4 characters only (nothing of keys too short to hide)."""
    if not api_key:
        return None
    return "••••" + api_key[-4:] if len(api_key) >= 12 else "••••"
