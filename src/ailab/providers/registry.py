"""The providers of this process, routing model ids to them, and what their generations showed.

The providers are built from the installed plugins (:mod:`ailab.providers.plugins`). Model ids are
``<provider>/<model>``; an empty id goes to the default model (the embedded one unless
``AILAB_DEFAULT_MODEL`` says otherwise).

Model aliases (``services/routing``) are providers too, kept apart in :attr:`ProviderRegistry.aliases`:
a bare name (``fast``, or ``alias/fast``) resolves to its alias's provider, which spreads the request
over the alias's deployments. Such a deployment may name another host of a configured backend (two
Ollama servers): :meth:`ProviderRegistry.variant` builds that backend's plugin once more, with its
base URL overridden, and keeps it for the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from ailab.errors import InvalidInput, ModelNotFound
from ailab.providers.base import Credential, CredentialStore, ModelInfo, Provider
from ailab.providers.plugin import Capabilities, ProviderContext
from ailab.providers.plugins import Plugins

LOCAL_PROVIDER = "local"
ALIAS_PREFIX = "alias"  # "alias/fast" names the alias "fast" too (what its provider's records say)
LIST_MODELS_TIMEOUT_S = 10.0
log = logging.getLogger("ailab.providers")


@dataclass(slots=True)
class GenerationRecord:
    """What monitoring learns about one generation (no prompt, no answer, no credentials).

    Not frozen, though read-only: a frozen dataclass sets each field through ``object.__setattr__``,
    which made this one (one per generation) cost 1.3 us to build instead of 0.5 us.
    """

    provider: str
    model: str
    ok: bool
    duration_s: float
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_kind: str | None = None  # the error's code: "upstream_timeout", "invalid_api_key", ...
    stream: bool = False


GenerationObserver = Callable[[GenerationRecord], None]
SPEED_SMOOTHING = 0.3  # weight of the newest generation in a model's moving averages


@dataclass(slots=True)
class ModelSpeed:
    """What a model has shown it can do: moving averages of its first-token time and decoding rate."""

    ttft_s: float
    tokens_per_second: float

    def seconds_for(self, tokens: int) -> float:
        """The expected time of a generation of ``tokens`` tokens."""
        return self.ttft_s + tokens / self.tokens_per_second


class SpeedBook:
    """Per ``provider/model``: how fast it answered lately (from the generations the registry saw).

    Bounded (the least recently updated goes first): model names come from callers.
    """

    def __init__(self, max_models: int = 256) -> None:
        self._speeds: OrderedDict[str, ModelSpeed] = OrderedDict()
        self._max_models = max_models

    def observe(self, record: GenerationRecord) -> None:
        """Learn from a finished generation that decoded at least two tokens."""
        if not record.ok or record.ttft_s is None or record.completion_tokens < 2:
            return
        decoding = record.duration_s - record.ttft_s
        if decoding <= 0:
            return
        rate = record.completion_tokens / decoding
        key = f"{record.provider}/{record.model}"
        known = self._speeds.get(key)
        if known is None:
            self._speeds[key] = ModelSpeed(record.ttft_s, rate)
            if len(self._speeds) > self._max_models:
                self._speeds.popitem(last=False)
            return
        self._speeds.move_to_end(key)
        known.ttft_s += SPEED_SMOOTHING * (record.ttft_s - known.ttft_s)
        known.tokens_per_second += SPEED_SMOOTHING * (rate - known.tokens_per_second)

    def get(self, model_id: str) -> ModelSpeed | None:
        """What ``provider/model`` has shown, or None before its first generation."""
        return self._speeds.get(model_id)


class BaseUrlCredentials:
    """A provider's credentials with the base URL of one deployment (another host of the same backend).

    The vault's ``config["base_url"]`` would otherwise win over the variant's settings; the key stays
    the provider's own.
    """

    def __init__(self, credentials: CredentialStore, base_url: str) -> None:
        self._credentials = credentials
        self._base_url = base_url

    async def get(self, service: str) -> Credential | None:
        """The provider's credential (or a keyless one) pointing at this base URL."""
        found = await self._credentials.get(service)
        if found is None:
            return Credential(api_key=None, config={"base_url": self._base_url})
        return replace(found, config={**found.config, "base_url": self._base_url})


class ProviderRegistry:
    """The providers of this process, by name, and the observers of their generations."""

    def __init__(self, providers: Iterable[Provider], default_model: str = "") -> None:
        self.providers: dict[str, Provider] = {p.name: p for p in providers}
        self.plugins = Plugins({}, {})  # what the providers were built from (from_plugins sets it)
        self.default_model = default_model
        self.speeds = SpeedBook()
        self.observers: list[GenerationObserver] = [self.speeds.observe]
        # Model aliases by name; services/routing replaces the whole mapping when its file changes.
        self.aliases: Mapping[str, Provider] = {}
        self._credentials: CredentialStore | None = None  # from_plugins: for variants
        self._context: ProviderContext | None = None
        self._variants: dict[tuple[str, str], Provider] = {}

    @classmethod
    def from_plugins(
        cls,
        plugins: Plugins,
        credentials: CredentialStore,
        context: ProviderContext,
        default_model: str = "",
    ) -> ProviderRegistry:
        """Build every plugin's provider; one whose factory fails is logged and left out, not fatal."""
        providers: list[Provider] = []
        for name, plugin in plugins.plugins.items():
            try:
                provider = plugin.create(plugins.settings[name], credentials, context)
            except Exception:
                log.exception("provider plugin %r failed to start", name)
                continue
            if provider is not None:
                providers.append(provider)
        registry = cls(providers, default_model)
        registry.plugins = plugins
        registry._credentials, registry._context = credentials, context
        return registry

    def resolve(self, model_id: str | None) -> tuple[Provider, str]:
        """The provider and its own model name for ``provider/model``, an alias (``fast`` or
        ``alias/fast``: its provider and its name), or the default model."""
        model_id = model_id or self.default_model
        prefix, _, rest = model_id.partition("/")
        if rest and prefix in self.providers:
            return self.providers[prefix], rest
        name = rest if prefix == ALIAS_PREFIX else model_id
        alias = self.aliases.get(name)
        if alias is not None:
            return alias, name
        if not model_id and LOCAL_PROVIDER in self.providers:
            local = self.providers[LOCAL_PROVIDER]
            # Name the embedded model, so records and metrics carry its name, not an empty one.
            return local, str(getattr(local, "model_name", ""))
        known = ", ".join(sorted(self.providers)) or "none"
        aliases = f"; or an alias ({', '.join(sorted(self.aliases))})" if self.aliases else ""
        raise ModelNotFound(
            f"unknown model {model_id!r}: use '<provider>/<model>' with a configured provider "
            f"({known}){aliases}"
        )

    def takes_base_url(self, provider: str) -> bool:
        """Whether ``provider``'s plugin has a base URL a deployment may override (a variant)."""
        plugin = self.plugins.plugins.get(provider)
        return plugin is not None and "base_url" in plugin.settings.model_fields

    def variant(self, provider: str, base_url: str) -> Provider:
        """``provider`` built once more from its plugin, at ``base_url`` (another host of the same backend),
        under the same name; one per ``(provider, base URL)``, kept until :meth:`aclose`.

        Raises :class:`InvalidInput` when the provider has no base URL to override.
        """
        key = (provider, base_url)
        found = self._variants.get(key)
        if found is not None:
            return found
        plugin = self.plugins.plugins.get(provider)
        if plugin is None or self._credentials is None or self._context is None:
            raise InvalidInput(f"{provider!r} is not a configured provider plugin")
        if not self.takes_base_url(provider):
            raise InvalidInput(f"the {provider!r} provider has no base URL to set")
        settings = self.plugins.settings[provider].model_copy(update={"base_url": base_url})
        try:
            built = plugin.create(settings, BaseUrlCredentials(self._credentials, base_url), self._context)
        except Exception as exc:  # a plugin's factory refusing these settings: the entry is at fault
            raise InvalidInput(f"the {provider!r} provider did not start at {base_url}: {exc}") from exc
        if built is None:
            raise InvalidInput(f"the {provider!r} provider did not start at {base_url}")
        self._variants[key] = built
        return built

    def capabilities(self, provider: str) -> Capabilities | None:
        """What the plugin behind ``provider`` declares its models can do; None when it was not built
        from a plugin (then nothing is assumed either way)."""
        plugin = self.plugins.plugins.get(provider)
        return plugin.capabilities if plugin is not None else None

    async def list_models(self) -> list[tuple[str, ModelInfo]]:
        """Every model of every provider as ``(provider name, model)``, asked concurrently.

        A backend that fails or does not answer within ``LIST_MODELS_TIMEOUT_S`` is skipped (and logged),
        so one provider down never hides the others or stalls the listing.
        """

        async def one(name: str, provider: Provider) -> list[tuple[str, ModelInfo]]:
            try:
                async with asyncio.timeout(LIST_MODELS_TIMEOUT_S):
                    return [(name, model) for model in await provider.list_models()]
            except Exception as exc:  # noqa: BLE001 - one backend down must not hide the others
                log.warning("listing models of %s failed: %s", name, type(exc).__name__)
                return []

        results = await asyncio.gather(*(one(n, p) for n, p in self.providers.items()))
        return [item for listing in results for item in listing]

    def record(self, record: GenerationRecord) -> None:
        """Tell every observer about a finished generation."""
        for observer in self.observers:
            observer(record)

    async def aclose(self) -> None:
        """Close every provider, variants included."""
        for provider in [*self.providers.values(), *self._variants.values()]:
            await provider.aclose()
