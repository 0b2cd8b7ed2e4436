"""What a provider's credential looks like, declared by its plugin and checked before anything is stored.

A :class:`CredentialFormat` says the shape of the key, whether one is required, and the non-secret
settings (``config``) the credential takes, such as an endpoint or a base URL, each with its own check.
The vault validates every key through the format of the provider's plugin (:func:`validate`), so a
third-party plugin's keys are stored and checked like the built-ins'. Messages say what was expected and
never repeat the offending key. Config values are stored in plaintext, so URLs carrying credentials
(``https://user:pass@host``) are refused: a secret belongs in the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ailab.errors import InvalidInput

MAX_KEY_LENGTH = 1024
MAX_CONFIG_VALUE_LENGTH = 512
_PRINTABLE_NO_SPACE = re.compile(r"^[\x21-\x7e]+$")

Check = Callable[[str], str | None]  # returns an error message, or None when the value is fine


@dataclass(frozen=True, slots=True)
class Credential:
    """A provider credential: the secret and non-secret settings (endpoint, deployment, ...)."""

    api_key: str | None
    config: Mapping[str, str] = field(default_factory=dict)


def http_url(value: str) -> str | None:
    """A check: an http(s) URL with a host, no credentials, no query or fragment."""
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


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One non-secret setting of a credential."""

    check: Check
    required: bool = False
    help: str = ""  # what it is, for `ai-lab keys formats`
    url: bool = False  # a URL: its trailing "/" is dropped


BASE_URL_OPTIONAL = {"base_url": ConfigField(http_url, help="another base URL", url=True)}
BASE_URL_REQUIRED = {"base_url": ConfigField(http_url, required=True, help="the server's base URL", url=True)}


@dataclass(frozen=True, slots=True)
class CredentialFormat:
    """The credential a provider takes."""

    key_pattern: re.Pattern[str] | None  # None: any printable value without spaces
    expected: str  # what a key looks like, for the error message
    key_required: bool = True
    config: Mapping[str, ConfigField] = field(default_factory=dict)
    # Other providers' key shapes that users paste here by mistake: (pattern, hint).
    mistakes: tuple[tuple[re.Pattern[str], str], ...] = ()


def validate(
    service: str, form: CredentialFormat, api_key: str, config: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The cleaned key and config, or :class:`InvalidInput` saying what was expected.

    For a keyless service with a ``base_url``, a URL given as the key (as AI-Lab v2 stored it) is taken
    as ``base_url``.
    """
    key = api_key.strip()
    cleaned: dict[str, str] = {}
    for name, raw in config.items():
        if name not in form.config:
            allowed = ", ".join(form.config) or "none"
            raise InvalidInput(f"{service}: unknown config setting {name[:40]!r}; allowed: {allowed}")
        value = str(raw).strip()
        if not value:
            continue
        if len(value) > MAX_CONFIG_VALUE_LENGTH:
            raise InvalidInput(f"{service}: config {name} is longer than {MAX_CONFIG_VALUE_LENGTH} chars")
        problem = form.config[name].check(value)
        if problem:
            raise InvalidInput(f"{service}: config {name} {problem}")
        cleaned[name] = value.rstrip("/") if form.config[name].url else value
    takes_url = not form.key_required and "base_url" in form.config and "base_url" not in cleaned
    if takes_url and key.startswith(("http://", "https://")) and http_url(key) is None:
        cleaned["base_url"], key = key.rstrip("/"), ""
    missing = [name for name, f in form.config.items() if f.required and name not in cleaned]
    if missing:
        raise InvalidInput(f"{service}: config {', '.join(missing)} is required")
    if not key:
        if form.key_required:
            raise InvalidInput(f"{service}: api_key is required: expected {form.expected}")
        return key, cleaned
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"{service}: the key is longer than {MAX_KEY_LENGTH} characters")
    for pattern, hint in form.mistakes:
        if pattern.match(key):
            raise InvalidInput(f"{service}: {hint}")
    if form.key_pattern is not None:
        if not form.key_pattern.match(key):
            raise InvalidInput(f"{service}: the key does not look right: expected {form.expected}")
    elif not _PRINTABLE_NO_SPACE.match(key):
        raise InvalidInput(f"{service}: the key must be printable ASCII without spaces")
    return key, cleaned


def mask(api_key: str | None) -> str | None:
    """The key as shown in lists: its last 4 characters only (nothing of keys too short to hide)."""
    if not api_key:
        return None
    return "••••" + api_key[-4:] if len(api_key) >= 12 else "••••"
