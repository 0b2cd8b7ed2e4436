"""The services of one server process, built at start and closed at shutdown.

``build_services`` is the composition root: it creates the database pool and every service from the
settings, in dependency order. The API keeps the result on ``app.state.services``; the CLI builds its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.metrics import Metrics
from ailab.providers.plugin import ProviderContext
from ailab.providers.plugins import Plugins
from ailab.providers.registry import ProviderRegistry
from ailab.services.auth.accounts import AuthService
from ailab.services.auth.throttle import RedisThrottle
from ailab.services.chat.agents import AgentCatalog
from ailab.services.chat.direct import DirectPipeline
from ailab.services.chat.pipelines import Pipelines
from ailab.services.chat.service import ChatService
from ailab.services.files.context import AttachmentReader
from ailab.services.files.extract import ExtractionLimits, Extractor
from ailab.services.files.service import FileService
from ailab.services.files.vectors import ChunkEmbedder
from ailab.services.gateway.service import Gateway
from ailab.services.masterkey import load_master_keys
from ailab.services.monitoring.benchmark import BenchmarkService
from ailab.services.monitoring.health import HealthCheck
from ailab.services.monitoring.monitor import Monitor, model_probe
from ailab.services.routing.service import RoutingService
from ailab.services.runs.service import RunService
from ailab.services.sessions.service import SessionService
from ailab.services.shared import connect_redis
from ailab.services.usage.service import UsageService
from ailab.services.vault.store import Vault


@dataclass
class Services:
    """Everything a request handler or a CLI command may need."""

    settings: Settings
    db: Database
    master_keys: list[str]
    auth: AuthService
    sessions: SessionService
    providers: ProviderRegistry
    vault: Vault
    # /chat's pipelines by name: `direct` (static Pipelines) and the stored agent pipelines; also /pipelines.
    pipelines: AgentCatalog
    chat: ChatService
    runs: RunService  # /chat turns as server tasks: follow, cancel, list
    gateway: Gateway
    monitor: Monitor  # system sampler, Prometheus metrics, performance history
    benchmarks: BenchmarkService
    files: FileService  # uploads, their text, search
    health: HealthCheck
    usage: UsageService  # usage per user, token and model; budgets
    routing: RoutingService  # model aliases: the models file, its watcher, the admin API's edits
    redis: Any = None  # a redis.asyncio client when AILAB_REDIS_URL is set
    # Extra sections of GET /health: name -> coroutine giving its JSON value.
    health_probes: dict[str, Callable[[], Awaitable[Any]]] = field(default_factory=dict)
    # Closed in reverse order at shutdown (provider clients, background tasks, ...).
    closers: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        """Stop background work and close pools."""
        for closer in reversed(self.closers):
            await closer()
        await self.providers.aclose()
        await self.db.close()


@dataclass
class CoreServices:
    """The database and the services built on it alone, for CLI commands that need nothing more.

    ``ai-lab keys``, ``users`` and ``tokens`` use this: no provider is started, no sampler runs, no
    pipeline is seeded. The vault loads the plugins' declarations (to validate and test keys) only
    when a command asks for it.
    """

    settings: Settings
    db: Database
    master_keys: list[str]

    @cached_property
    def auth(self) -> AuthService:
        """Users, sessions and API tokens."""
        return AuthService(self.db, self.settings, self.master_keys)

    @cached_property
    def vault(self) -> Vault:
        """The API-key vault, validating and testing through the installed plugins."""
        return Vault(self.db, self.settings, self.master_keys, Plugins.load(self.settings.providers))

    @cached_property
    def usage(self) -> UsageService:
        """Usage reports and budgets (nothing is counted in a CLI process: it serves no requests)."""
        return UsageService(self.db, flush_seconds=self.settings.usage_flush_seconds)

    @cached_property
    def files(self) -> FileService:
        """Uploaded files, with a worker to read documents (started on the first one)."""
        return FileService(self.db, self.settings, build_extractor(self.settings))

    async def aclose(self) -> None:
        """Stop the document reader, if one was started, and close the database pool."""
        if "files" in self.__dict__:
            await self.files.aclose()
        await self.db.close()


def build_extractor(settings: Settings) -> Extractor:
    """The document reader of ``settings``: worker processes with their limits."""
    limits = ExtractionLimits(
        timeout_s=settings.extract_timeout_seconds,
        memory_bytes=settings.extract_memory_mb * 1024 * 1024,
        max_pages=settings.extract_max_pages,
    )
    return Extractor(limits, workers=settings.extract_workers)


def build_core(settings: Settings) -> CoreServices:
    """The :class:`CoreServices` of ``settings`` (the database must already be migrated)."""
    settings.ensure_data_dir()
    db = Database(settings.sqlalchemy_url, pool_size=1, max_overflow=0)
    return CoreServices(settings, db, load_master_keys(settings))


async def build_services(settings: Settings) -> Services:
    """Create the services for ``settings`` (the database must already be migrated)."""
    settings.ensure_data_dir()
    master_keys = load_master_keys(settings)
    redis = await connect_redis(settings.redis_url) if settings.redis_url else None
    throttle = None
    if redis is not None:
        throttle = RedisThrottle(
            redis, settings.login_max_failures, settings.login_lockout_seconds, prefix=settings.redis_prefix
        )
    db = Database(
        settings.sqlalchemy_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )
    plugins = Plugins.load(settings.providers)
    vault = Vault(db, settings, master_keys, plugins)  # the providers' credentials: vault, then settings
    sessions = SessionService(db)
    context = ProviderContext(data_dir=settings.data_dir, timeout_s=settings.provider_timeout_seconds)
    providers = ProviderRegistry.from_plugins(plugins, vault, context, settings.default_model)
    pipelines = AgentCatalog(db, providers, settings, Pipelines([DirectPipeline(providers)]))
    embedder = None
    if settings.files_embedding_model:
        embedder = ChunkEmbedder(db, providers, settings.files_embedding_model)
    files = FileService(db, settings, build_extractor(settings), embedder)
    attachments = AttachmentReader(db, files.blobs, embedder)
    chat = ChatService(db, sessions, providers, pipelines, settings, attachments=attachments)
    monitor = Monitor(settings, db, Metrics.from_environment())
    routing = RoutingService(
        providers,
        settings.models_path,
        redis=redis,
        redis_prefix=settings.redis_prefix,
        on_attempt=monitor.metrics.observe_route_attempt,
    )
    providers.observers.append(monitor.observe_generation)
    usage = UsageService(
        db,
        flush_seconds=settings.usage_flush_seconds,
        redis=redis,
        redis_prefix=settings.redis_prefix,
        on_limited=monitor.metrics.observe_limited,
    )
    providers.observers.append(usage.observe)
    probes: dict[str, Callable[[], Awaitable[Any]]] = {}
    services = Services(
        settings=settings,
        db=db,
        master_keys=master_keys,
        auth=AuthService(db, settings, master_keys, throttle),
        redis=redis,
        sessions=sessions,
        providers=providers,
        vault=vault,
        pipelines=pipelines,
        chat=chat,
        runs=RunService(db, chat, settings, redis),
        gateway=Gateway(providers, pipelines),
        monitor=monitor,
        benchmarks=BenchmarkService(db, providers, max_running=settings.benchmark_max_running),
        files=files,
        health=HealthCheck(db, probes),
        routing=routing,
        usage=usage,
        health_probes=probes,
    )
    try:
        await routing.start()  # a broken models file stops the start, naming it
        services.closers.append(routing.aclose)
        await pipelines.seed()  # first start only: the built-in agents, or <data dir>/pipelines.yaml
    except BaseException:
        await services.aclose()  # a broken seed file stops the start; leave no pool or provider open
        raise
    services.health_probes["model"] = model_probe(providers)
    services.health_probes["metrics"] = monitor.health_summary
    await monitor.start()
    services.closers.append(monitor.aclose)  # closed last: flushes what the others recorded
    await usage.start()  # reads the budgets and their use before the first request
    services.closers.append(usage.aclose)  # after the runs and benchmarks: writes what they used
    services.closers.append(chat.wait_idle)  # answers being stored are stored before the pool closes
    services.closers.append(services.benchmarks.aclose)
    await files.start()  # reads again the documents a restart interrupted
    services.closers.append(files.aclose)
    await services.runs.start()  # fails the runs a previous process left behind
    services.closers.append(services.runs.aclose)  # closed first: stops runs, stores their answers
    if redis is not None:
        services.closers.insert(0, redis.aclose)  # closed after everything that may use it
    return services
