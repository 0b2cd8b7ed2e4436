"""What a user can pick as a model: every backend's models with their state, and every pipeline.

``ai-lab models list`` shows it. Unlike the gateway's ``/v1/models`` (which leaves out a backend that
does not answer, so clients see only what works), this says why a backend has no model to offer: no key
set, unreachable, the key refused. Each backend is asked concurrently, with a time limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ailab.errors import AILabError
from ailab.providers.base import Provider
from ailab.providers.registry import ALIAS_PREFIX, LIST_MODELS_TIMEOUT_S, ProviderRegistry
from ailab.services.chat.turns import PipelineLookup
from ailab.services.gateway.pipelines import PIPELINE_PREFIX


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model (or one backend without models) and its state."""

    id: str  # "provider/model", an alias, "pipeline/<name>", or "provider/*" for a backend with none to offer
    kind: str  # "local", "remote", "alias" or "pipeline"
    state: str  # "ready", "loaded", or why it cannot serve
    context_window: int | None = None
    size_bytes: int | None = None
    default: bool = False


async def _backend(name: str, provider: Provider, default_id: str) -> list[ModelRow]:
    kind = "local" if name == "local" else "remote"
    loaded = getattr(provider, "loaded_model", None)
    try:
        async with asyncio.timeout(LIST_MODELS_TIMEOUT_S):
            models = await provider.list_models()
            health = None if models else await provider.health()
    except TimeoutError:
        return [ModelRow(f"{name}/*", kind, f"no answer within {LIST_MODELS_TIMEOUT_S:g}s")]
    except AILabError as exc:
        return [ModelRow(f"{name}/*", kind, exc.message)]
    if health is not None:
        return [ModelRow(f"{name}/*", kind, health.detail or "no models")]
    return [
        ModelRow(
            id=f"{name}/{info.id}",
            kind=kind,
            state="loaded" if info.id == loaded else "ready",
            context_window=info.context_window,
            size_bytes=info.size_bytes,
            default=f"{name}/{info.id}" == default_id,
        )
        for info in models
    ]


async def model_rows(providers: ProviderRegistry, pipelines: PipelineLookup) -> list[ModelRow]:
    """Every backend's models, then every alias and pipeline, then the backends with none to offer and
    why."""
    try:
        default_provider, default_model = providers.resolve(None)
        default_id = f"{default_provider.name}/{default_model}"
    except AILabError:
        default_id = ""
    listings = await asyncio.gather(
        *(_backend(name, provider, default_id) for name, provider in providers.providers.items())
    )
    rows = [row for listing in listings for row in listing]
    usable = [row for row in rows if not row.id.endswith("/*")]
    alias_rows = [  # the alias provider's own records call it alias/<name>
        ModelRow(name, "alias", "ready", default=f"{ALIAS_PREFIX}/{name}" == default_id)
        for name in providers.aliases
    ]
    pipeline_rows = [
        ModelRow(PIPELINE_PREFIX + name, "pipeline", "ready") for name in await pipelines.names()
    ]
    return usable + alias_rows + pipeline_rows + [row for row in rows if row.id.endswith("/*")]
