"""The providers of this process, routing model ids to them, and what their generations showed.

The providers are built from the installed plugins (:mod:`ailab.providers.plugins`). Model ids are
``<provider>/<model>``; an empty id goes to the default model (the embedded one unless
``AILAB_DEFAULT_MODEL`` says otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ailab.errors import ModelNotFound
from ailab.providers.base import CredentialStore, ModelInfo, Provider
from ailab.providers.plugin import Capabilities, ProviderContext
from ailab.providers.plugins import Plugins

LOCAL_PROVIDER = "local"
LIST_MODELS_TIMEOUT_S = 10.0
log = logging.getLogger("ailab.providers")


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """What monitoring learns about one generation (no prompt, no answer, no credentials)."""

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


class ProviderRegistry:
    """The providers of this process, by name, and the observers of their generations."""

    def __init__(self, providers: Iterable[Provider], default_model: str = "") -> None:
        self.providers: dict[str, Provider] = {p.name: p for p in providers}
        self.plugins = Plugins({}, {})  # what the providers were built from (from_plugins sets it)
        self.default_model = default_model
        self.speeds = SpeedBook()
        self.observers: list[GenerationObserver] = [self.speeds.observe]

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
        return registry

    def resolve(self, model_id: str | None) -> tuple[Provider, str]:
        """The provider and its own model name for ``provider/model`` (or the default model)."""
        model_id = model_id or self.default_model
        prefix, _, rest = model_id.partition("/")
        if rest and prefix in self.providers:
            return self.providers[prefix], rest
        if not model_id and LOCAL_PROVIDER in self.providers:
            local = self.providers[LOCAL_PROVIDER]
            # Name the embedded model, so records and metrics carry its name, not an empty one.
            return local, str(getattr(local, "model_name", ""))
        known = ", ".join(sorted(self.providers)) or "none"
        raise ModelNotFound(
            f"unknown model {model_id!r}: use '<provider>/<model>' with a configured provider ({known})"
        )

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
        """Close every provider."""
        for provider in self.providers.values():
            await provider.aclose()
