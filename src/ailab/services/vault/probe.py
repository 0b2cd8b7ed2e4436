"""Trying a credential: build its plugin's provider around that credential alone and list the models."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ailab.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ailab.logs import redact
from ailab.providers.base import Credential, Provider
from ailab.providers.plugin import ProviderContext, ProviderPlugin
from ailab.providers.plugins import Plugins

TEST_TIMEOUT_SECONDS = 10.0
log = logging.getLogger("ailab.vault")


class _FixedCredentials:
    """A credential store that knows one credential: the one under test."""

    def __init__(self, plugins: Plugins, service: str, credential: Credential) -> None:
        self._plugins, self._service, self._credential = plugins, service, credential

    async def get(self, service: str) -> Credential | None:
        return self._credential if self._plugins.canonical(service) == self._service else None


def _clean_detail(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "[REDACTED]")
    text = redact(text)
    return text if len(text) <= 300 else text[:300] + "..."


async def probe(
    plugins: Plugins, plugin: ProviderPlugin, credential: Credential, data_dir: Path
) -> tuple[str, str]:
    """``(result, detail)``: ``valid``, ``invalid`` (rejected) or ``unreachable``; never raises, and
    the detail never holds the key."""
    service = plugin.name
    context = ProviderContext(data_dir=data_dir, timeout_s=TEST_TIMEOUT_SECONDS)
    try:
        settings = plugins.settings.get(service) or plugin.load_settings()
        provider: Provider | None = plugin.create(
            settings, _FixedCredentials(plugins, service, credential), context
        )
    except Exception as exc:  # noqa: BLE001 - a broken plugin is a test result, not a 500
        log.warning("the provider plugin %s failed to start: %s", service, type(exc).__name__)
        return "unreachable", f"the provider plugin failed to start ({type(exc).__name__})"
    if provider is None:
        return "unreachable", "the provider plugin is not configured (is a base URL set?)"
    try:
        async with asyncio.timeout(TEST_TIMEOUT_SECONDS):
            models = await provider.list_models()
    except ProviderAuthError as exc:
        detail = _clean_detail(exc.message, credential.api_key)
        return "invalid", f"the provider rejected the key: {detail}"
    except ProviderRateLimited:
        return "valid", "the provider accepted the key but is rate limiting it"
    except (ProviderUnavailable, ProviderTimeout) as exc:
        return "unreachable", _clean_detail(exc.message, credential.api_key)
    except TimeoutError:
        return "unreachable", f"no answer within {TEST_TIMEOUT_SECONDS:g} s"
    except ProviderError as exc:
        return "unreachable", "the provider answered with an error: " + _clean_detail(
            exc.message, credential.api_key
        )
    except Exception as exc:  # noqa: BLE001 - the test must answer, whatever the plugin does
        log.warning("testing the key of %s failed: %s", service, type(exc).__name__)
        return "unreachable", f"the check failed ({type(exc).__name__})"
    finally:
        try:
            await provider.aclose()
        except Exception as exc:  # noqa: BLE001 - closing must not change the answer
            log.debug("closing the probe provider of %s failed: %s", service, type(exc).__name__)
    return "valid", f"the provider accepted the key ({len(models)} models listed)"
