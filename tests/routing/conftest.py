"""Fixtures of the routing tests: two OpenAI-compatible upstreams that say who answered (``a``, ``b``), a
third as the fallback (``c``, as ``openai``), an injected clock and sleep, and routers built on them.

Two upstreams of one kind are two deployments of ``openai-compat``: ``a`` is the provider's configured
base URL, ``b`` the same provider at another ``base_url`` (a variant the registry builds).

- ``make_routing(yaml)``: a :class:`RoutingService` on a fresh models file and a registry of
  ``openai-compat`` and ``openai``, with the fake clock, the recorded sleeps, the recorded attempts (as
  the metrics count them), and a draw that always takes the first candidate (so a test knows which
  deployment is tried first);
- ``alias_app(yaml, **settings)``: the app (as admin) on that file, with the same upstreams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ailab.config import Settings
from ailab.providers import openai as openai_plugin
from ailab.providers import openai_compat
from ailab.providers.base import ChatMessage, ChatRequest, Provider
from ailab.providers.plugin import ProviderContext
from ailab.providers.plugins import Plugins, SettingsCredentials
from ailab.providers.registry import ProviderRegistry
from ailab.services.routing.router import AliasProvider, Pacing
from ailab.services.routing.service import RoutingService
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure

HI = [ChatMessage("user", "Say hello.")]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sleeps:
    """An injected ``sleep``: records each wait and moves the clock on by it."""

    clock: FakeClock
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def first_candidate() -> float:
    """A draw of 0: the routers take the first deployment still in the running."""
    return 0.0


@pytest.fixture
async def a() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(any_key=True, models=["m"], reply="from a") as server:
        yield server


@pytest.fixture
async def b() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(any_key=True, models=["m"], reply="from b") as server:
        yield server


@pytest.fixture
async def c() -> AsyncIterator[FakeOpenAI]:
    """The fallback, configured as the ``openai`` provider (its default key, model gpt-4o-mini)."""
    async with FakeOpenAI(reply="from c") as server:
        yield server


@dataclass
class Routing:
    """A routing service on its own registry, and what the test controls."""

    service: RoutingService
    registry: ProviderRegistry
    clock: FakeClock
    sleeps: Sleeps
    attempts: list[tuple[str, str, str]]  # (alias, target, outcome), as the metrics count them

    def alias(self, name: str) -> AliasProvider:
        provider, model = self.registry.resolve(name)
        assert isinstance(provider, AliasProvider) and model == name
        return provider

    async def ask(self, name: str, text: str = "Say hello.") -> str:
        """One whole answer from the alias ``name``."""
        result = await self.alias(name).chat(ChatRequest(model=name, messages=[ChatMessage("user", text)]))
        return result.content


def alias_yaml(a: FakeOpenAI, b: FakeOpenAI, **extra: Any) -> str:
    """The alias ``fast`` over ``a`` (the provider's base URL) and ``b`` (another ``base_url``), as YAML;
    ``extra`` adds keys (their values written as YAML flow, e.g. ``fallbacks="[openai/gpt-4o-mini]"``)."""
    lines = [
        "aliases:",
        "  - name: fast",
        "    deployments:",
        "      - openai-compat/m",
        f"      - {{model: openai-compat/m, base_url: '{b.base_url}'}}",
    ]
    lines += [f"    {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def build_registry(a: FakeOpenAI, c: FakeOpenAI, data_dir: Path, timeout_s: float = 10.0) -> ProviderRegistry:
    """``openai-compat`` at ``a`` and ``openai`` at ``c``, built from their plugins as the server does."""
    chosen = [openai_compat.PLUGIN, openai_plugin.PLUGIN]
    overrides = {
        "openai-compat": {"base_url": a.base_url},
        "openai": {"base_url": c.base_url, "api_key": c.api_key},
    }
    plugins = Plugins(
        {p.name: p for p in chosen}, {p.name: p.load_settings(overrides[p.name]) for p in chosen}
    )
    context = ProviderContext(data_dir=data_dir, timeout_s=timeout_s)
    return ProviderRegistry.from_plugins(plugins, SettingsCredentials(plugins), context)


MakeRouting = Callable[..., AbstractAsyncContextManager[Routing]]


@pytest.fixture
def make_routing(tmp_path: Path, a: FakeOpenAI, c: FakeOpenAI) -> MakeRouting:
    """``async with make_routing(yaml) as routing``: a started service on a models file holding ``yaml``."""

    @asynccontextmanager
    async def build(yaml: str, *, redis: Any = None, redis_prefix: str = "ailab") -> AsyncIterator[Routing]:
        path = tmp_path / "models.yaml"
        path.write_text(yaml)
        registry = build_registry(a, c, tmp_path)
        clock = FakeClock()
        sleeps = Sleeps(clock)
        pacing = Pacing(clock, sleeps)
        pacing.random = first_candidate
        attempts: list[tuple[str, str, str]] = []
        service = RoutingService(
            registry,
            path,
            redis=redis,
            redis_prefix=redis_prefix,
            pacing=pacing,
            on_attempt=lambda *attempt: attempts.append(attempt),
        )
        await service.start(watch=False)
        try:
            yield Routing(service, registry, clock, sleeps, attempts)
        finally:
            await service.aclose()
            await registry.aclose()

    return build


AliasApp = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def alias_app(settings: Settings, app_client: AppClientFactory, a: FakeOpenAI, c: FakeOpenAI) -> AliasApp:
    """``async with alias_app(yaml) as client``: the app, as admin, with ``openai-compat`` at ``a``,
    ``openai`` at ``c`` and the models file holding ``yaml`` (None: no file)."""

    @asynccontextmanager
    async def build(yaml: str | None, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        configured = configure(
            settings,
            openai_compat_base_url=a.base_url,
            openai_base_url=c.base_url,
            openai_api_key=c.api_key,
            **overrides,
        )
        if yaml is not None:
            configured.models_path.parent.mkdir(parents=True, exist_ok=True)
            configured.models_path.write_text(yaml)
        async with app_client(configured) as client:
            client.services.routing.pacing.random = first_candidate  # type: ignore[attr-defined]
            yield client

    return build


def provider_of(client: httpx.AsyncClient, model_id: str) -> Provider:
    """What the app's registry resolves ``model_id`` to."""
    provider, _ = client.services.providers.resolve(model_id)  # type: ignore[attr-defined]
    return provider
