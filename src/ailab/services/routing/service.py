"""The model aliases of one process: loaded from the models file, kept current, edited by admins.

At start the file is read and every alias checked against the running providers; a file that cannot be
read or is not valid stops the start, naming the file and the problem (:class:`ConfigError`). Then a
watcher looks at the file's stamp once a second (a ``stat`` in a thread: nothing per request) and, when
it changed, reads it again: a valid file replaces the aliases at once (the registry's alias mapping is
swapped whole, so a request sees the old aliases or the new ones); a broken one is logged, with why, and
the last good aliases stay.

The admin API edits through :meth:`RoutingService.put` and :meth:`RoutingService.delete`: under the
file's lock, the current file is read (a broken one is not overwritten: 409), changed, checked and written
atomically, then loaded here at once; the other replicas load it within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ailab.config import ConfigError
from ailab.errors import Conflict, InvalidInput, NotFound
from ailab.providers.base import Provider, SupportsOpenAIForward
from ailab.providers.registry import ProviderRegistry
from ailab.services.routing.config import AliasSpec, check_alias
from ailab.services.routing.cooldowns import CooldownBook, RedisCooldowns
from ailab.services.routing.router import (
    AliasProvider,
    ForwardingAliasProvider,
    Pacing,
    RecordAttempt,
    Route,
    Target,
)
from ailab.services.routing.store import ModelsFile, Stamp

CHECK_INTERVAL_S = 1.0
log = logging.getLogger("ailab.routing")


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """How one deployment of an alias is doing in this process."""

    deployment: str  # its key: provider/model, with @base_url for another host
    available: bool
    cooling_down_seconds: float
    in_flight: int


@dataclass(frozen=True, slots=True)
class AliasView:
    """An alias as stored, with its deployments' state."""

    spec: AliasSpec
    status: list[DeploymentStatus]


class RoutingService:
    """The aliases of this process (see the module docstring)."""

    def __init__(
        self,
        registry: ProviderRegistry,
        path: Path,
        *,
        redis: Any = None,
        redis_prefix: str = "ailab",
        clock: Callable[[], float] = time.monotonic,
        pacing: Pacing | None = None,
        on_attempt: RecordAttempt | None = None,
    ) -> None:
        """``on_attempt(alias, target, outcome)`` counts each attempt of a routed request (the metrics)."""
        self._registry = registry
        self._on_attempt = on_attempt
        self.file = ModelsFile(path)
        self.pacing = pacing or Pacing(clock)
        shared = RedisCooldowns(redis, redis_prefix) if redis is not None else None
        self.cooldowns = CooldownBook(self.pacing.clock, shared)
        self._specs: list[AliasSpec] = []
        self._stamp: Stamp | None = None
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # -- loading ---------------------------------------------------------------------------------------

    async def start(self, *, watch: bool = True) -> None:
        """Load the file (ConfigError naming it when it is not valid) and start watching it."""
        stamp, specs = await asyncio.to_thread(self.file.read)
        try:
            self._install(specs)
        except InvalidInput as exc:
            raise ConfigError(f"{self.file.path}: {exc.message}") from None
        self._stamp = stamp
        if specs:
            log.info("model aliases from %s: %s", self.file.path, ", ".join(s.name for s in specs))
        if watch:
            self._watcher = asyncio.create_task(self._watch(), name="models-file-watcher")

    async def refresh(self) -> bool:
        """Load the file again if it changed since it was last read; whether the aliases changed. A file
        that is not valid is logged and the aliases stay as they were."""
        async with self._lock:
            stamp = await asyncio.to_thread(self.file.stamp)
            if stamp == self._stamp:
                return False
            try:
                stamp, specs = await asyncio.to_thread(self.file.read)
                self._install(specs)
            except (ConfigError, InvalidInput) as exc:
                # ConfigError names the file already; InvalidInput names the alias.
                message = f"{self.file.path}: {exc.message}" if isinstance(exc, InvalidInput) else str(exc)
                log.error("the models file changed but is not valid, the last good aliases stay: %s", message)
                self._stamp = stamp  # not again until it changes once more
                return False
            self._stamp = stamp
            log.info("model aliases reloaded from %s: %s", self.file.path, ", ".join(self.names()) or "none")
            return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            try:
                await self.refresh()
            except Exception:  # the watcher must outlive a surprise
                log.exception("checking %s failed", self.file.path)

    def _install(self, specs: list[AliasSpec]) -> None:
        """Check ``specs`` and make them the registry's aliases (InvalidInput for the first bad one)."""
        for spec in specs:
            check_alias(spec, self._registry)
        self._registry.aliases = {spec.name: self._provider(spec) for spec in specs}
        self._specs = specs

    def _provider(self, spec: AliasSpec) -> AliasProvider:
        deployments = tuple(self._target(d.key, d.model, d.base_url, d.weight) for d in spec.deployments)
        fallbacks = tuple(self._target(model_id, model_id, None, 1.0) for model_id in spec.fallbacks)
        route = Route(
            name=spec.name,
            deployments=deployments,
            fallbacks=fallbacks,
            least_busy=spec.strategy == "least-busy",
            retries=spec.retries,
            timeout_s=spec.timeout_seconds,
            cooldown=spec.cooldown,
        )
        forwards = all(isinstance(t.provider, SupportsOpenAIForward) for t in (*deployments, *fallbacks))
        kind = ForwardingAliasProvider if forwards else AliasProvider
        return kind(route, self.cooldowns, self.pacing, self._on_attempt)

    def _target(self, key: str, model_id: str, base_url: str | None, weight: float) -> Target:
        name, _, model = model_id.partition("/")
        provider: Provider = (
            self._registry.variant(name, base_url) if base_url else self._registry.providers[name]
        )
        return Target(key, provider, model, weight, self.cooldowns.state(key))

    # -- reading ---------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The aliases' names, in the file's order."""
        return [spec.name for spec in self._specs]

    def views(self) -> list[AliasView]:
        """Every alias, with its deployments' state."""
        return [self._view(spec) for spec in self._specs]

    def get(self, name: str) -> AliasView:
        """One alias; NotFound when there is none of that name."""
        for spec in self._specs:
            if spec.name == name:
                return self._view(spec)
        raise NotFound(f"no model alias {name!r}")

    def _view(self, spec: AliasSpec) -> AliasView:
        now = self.pacing.clock()
        status = []
        for deployment in spec.deployments:
            state = self.cooldowns.state(deployment.key)
            left = max(0.0, state.until - now)
            status.append(DeploymentStatus(deployment.key, left == 0, round(left, 3), state.in_flight))
        return AliasView(spec, status)

    # -- editing ---------------------------------------------------------------------------------------

    async def put(self, spec: AliasSpec) -> AliasView:
        """Create or replace the alias ``spec.name`` in the file (InvalidInput when it is not valid)."""
        check_alias(spec, self._registry)  # before the lock: its own problems are the caller's (422)

        def change(specs: list[AliasSpec]) -> list[AliasSpec]:
            names = [s.name for s in specs]
            if spec.name in names:
                return [spec if s.name == spec.name else s for s in specs]
            return [*specs, spec]

        await self._edit(change)
        return self.get(spec.name)

    async def delete(self, name: str) -> None:
        """Remove the alias ``name`` from the file (NotFound when there is none)."""

        def change(specs: list[AliasSpec]) -> list[AliasSpec]:
            if all(s.name != name for s in specs):
                raise NotFound(f"no model alias {name!r}")
            return [s for s in specs if s.name != name]

        await self._edit(change)

    async def _edit(self, change: Callable[[list[AliasSpec]], list[AliasSpec]]) -> None:
        def write() -> tuple[Stamp | None, list[AliasSpec]]:
            with self.file.locked():
                try:
                    _, current = self.file.read()
                except ConfigError as exc:
                    raise Conflict(f"{exc}; fix the file before editing aliases through the API") from None
                specs = change(current)
                for spec in specs:  # the others too: a provider may have gone since they were written
                    try:
                        check_alias(spec, self._registry)
                    except InvalidInput as exc:
                        raise Conflict(f"{self.file.path}: {exc.message}; fix it first") from None
                return self.file.write(specs), specs

        async with self._lock:
            stamp, specs = await asyncio.to_thread(write)
            self._install(specs)
            self._stamp = stamp

    async def aclose(self) -> None:
        """Stop watching the file."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
