"""An alias as a provider: one request, spread over the alias's deployments, retried, then its fallbacks.

:class:`AliasProvider` implements the :class:`~ailab.providers.base.Provider` protocol (and, when every
deployment and fallback speaks OpenAI's wire, :class:`ForwardingAliasProvider` adds the gateway's byte
pass-through), so ``/chat``, the agents, the benchmark and ``/v1`` use an alias like any model. Its
``name`` is ``alias`` and its model the alias's name: generation records say ``alias/fast``.

One request, attempt by attempt:

1. **pick** a deployment among those not cooling down and not yet tried in this round: at random by
   weight (``weighted``), or the fewest requests in flight per weight (``least-busy``, ties at random);
2. a **deployment failure** (429, 5xx, a connection failure or reset, a timeout, and a refused key or an
   unknown model: the deployment is misconfigured, not the request) is counted towards its cool-down
   (:mod:`~ailab.services.routing.cooldowns`) and the next deployment is tried at once; any other error
   (the request itself refused: 400, 413, 422) is the answer;
3. when a round has tried every available deployment, up to ``retries`` more rounds follow, each after a
   backoff (``BACKOFF_S`` doubling), or after the shortest cool-down left (a 429's Retry-After) if
   longer; a wait past ``MAX_WAIT_S`` is not made;
4. then the **fallbacks**, in order, once each (not cooled down: they are the last resort);
5. then the error: 429 (with the shortest Retry-After) when every attempt was rate limited, 504 when
   every attempt timed out, otherwise 502 naming what each said; 503 with Retry-After when nothing
   could be tried (every deployment cooling down, no fallback).

An attempt ends at its **first byte**: a whole answer for ``chat``, for a JSON pass-through and for any
other request routed through :meth:`AliasProvider.call` (the gateway's embeddings), the first chunk of a
stream. Past that, a stream belongs to the client: a failure is the client's error event, never a second
answer spliced onto the first. ``timeout_seconds`` bounds each attempt up to that point.

Every attempt is counted once, when its request is over (``ailab_route_attempts_total``: the alias, the
target's key and one of :data:`OUTCOMES`): ``ok`` a deployment answered, ``fallback`` a fallback
answered, ``rejected`` the upstream refused the request itself; a failed attempt is ``cooled_down`` when
its failure started the target's cool-down, else ``retried`` when another attempt followed it, else
``failed`` (the last attempt of a request that got no answer); ``cancelled`` when its client left (or the
server stopped) while it ran. A request that could try nothing (every deployment cooling down, no
fallback: the 503) counts once as ``unavailable``, with an empty target; one whose client left while a
retry round waited, once as ``cancelled`` with an empty target (its failed attempts as ``retried``). A
stream cut after its first byte was an ``ok`` attempt; that failure still counts towards the cool-down.

The hot path (a healthy pick) reads attributes, draws one random number and counts one attempt: no I/O.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from ailab.errors import (
    AILabError,
    InvalidInput,
    ModelBusy,
    ModelNotFound,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    Embeddings,
    ModelInfo,
    Provider,
    ProviderHealth,
    SupportsEmbeddings,
    SupportsOpenAIForward,
    SupportsRequestCheck,
    SupportsTools,
    SupportsVision,
    UpstreamResponse,
    WholeBody,
    close_stream,
    implements,
    read_whole,
)
from ailab.providers.registry import ALIAS_PREFIX, LIST_MODELS_TIMEOUT_S
from ailab.services.routing.config import CooldownSpec
from ailab.services.routing.cooldowns import CooldownBook, DeploymentState

BACKOFF_S = 0.25
MAX_WAIT_S = 5.0
EVENT_STREAM = "text/event-stream"
# What a deployment's failure looks like: another deployment may well answer.
DEPLOYMENT_FAILURES = (
    ProviderRateLimited,
    ProviderUnavailable,
    ProviderTimeout,
    ProviderAuthError,
    ModelNotFound,
)
# How an attempt ended (the ``outcome`` label of ``ailab_route_attempts_total``; the module docstring).
OK = "ok"
FALLBACK = "fallback"
REJECTED = "rejected"
RETRIED = "retried"
COOLED_DOWN = "cooled_down"
FAILED = "failed"
CANCELLED = "cancelled"
UNAVAILABLE = "unavailable"
OUTCOMES = (OK, FALLBACK, REJECTED, RETRIED, COOLED_DOWN, FAILED, CANCELLED, UNAVAILABLE)
log = logging.getLogger("ailab.routing")
T = TypeVar("T")
RecordAttempt = Callable[[str, str, str], None]  # (alias, target key, outcome)


def _not_recorded(alias: str, target: str, outcome: str) -> None:
    """Where no metrics are kept (tests, benchmarks)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where an attempt goes: a deployment (with its shared state) or a fallback (state unused)."""

    key: str  # "provider/model", "provider/model@base_url"
    provider: Provider
    model: str  # the provider's own name
    weight: float
    state: DeploymentState


@dataclass(frozen=True, slots=True)
class Route:
    """An alias, compiled: its targets and rules."""

    name: str
    deployments: tuple[Target, ...]
    fallbacks: tuple[Target, ...]
    least_busy: bool
    retries: int
    timeout_s: float | None
    cooldown: CooldownSpec


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed attempt of one request: what the error names and the attempt's count need."""

    key: str
    error: ProviderError
    cooled: bool  # it started the target's cool-down


class Pacing:
    """How the routers of a process tell time, wait and draw (tests pass their own)."""

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.random = (rng or random.Random()).random


class _Resumed:
    """A pass-through body whose first chunk was read already (to know the attempt succeeded); a
    deployment failure later in it still counts towards the deployment's cool-down."""

    __slots__ = ("_body", "_first", "_on_failure", "_state")

    def __init__(
        self,
        first: bytes,
        body: AsyncIterator[bytes],
        state: DeploymentState,
        on_failure: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._first: bytes | None = first
        self._body = body
        self._state: DeploymentState | None = state
        self._on_failure = on_failure

    def __aiter__(self) -> _Resumed:
        return self

    async def __anext__(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        try:
            return await self._body.__anext__()
        except DEPLOYMENT_FAILURES as exc:
            await self._on_failure(exc)
            raise

    async def aclose(self) -> None:
        """Release the upstream connection; the deployment has one request fewer in flight."""
        self._first = None
        if self._state is not None:
            self._state.in_flight -= 1
            self._state = None
        await close_stream(self._body)


class AliasProvider:
    """One alias (see the module docstring)."""

    name = ALIAS_PREFIX

    def __init__(
        self, route: Route, book: CooldownBook, pacing: Pacing, record: RecordAttempt | None = None
    ) -> None:
        self.route = route
        self._book = book
        self._pacing = pacing
        self._record = record or _not_recorded

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every deployment, then every fallback: where a request may land."""
        return (*self.route.deployments, *self.route.fallbacks)

    async def call(self, attempt: Callable[[Provider, str], Awaitable[T]]) -> T:
        """``attempt(provider, model)`` on the targets as the module docstring routes a request, until
        one returns; ``model`` is the target's own name. The attempt must end with its whole answer:
        what fails after it returned is not retried. Its deployment failures (the provider errors in
        :data:`DEPLOYMENT_FAILURES`) move on to the next target; any other error is the answer."""

        async def one(target: Target) -> T:
            target.state.in_flight += 1
            try:
                return await attempt(target.provider, target.model)
            finally:
                target.state.in_flight -= 1

        return await self._route(one)

    async def embed(self, model: str, inputs: list[str], *, dimensions: int | None = None) -> Embeddings:
        """One vector per input from the first target that gives them (``SupportsEmbeddings``, for callers
        inside the server such as the files' embedder; ``/v1/embeddings`` routes its own attempts).

        Raises InvalidInput (400), before anything is sent, when a deployment or fallback has no
        embeddings: a request may land on any of them.
        """
        lacking = [t.key for t in self.targets if not implements(t.provider, SupportsEmbeddings)]
        if lacking:
            raise InvalidInput(
                f"model alias {self.route.name!r} has models without embeddings: {', '.join(lacking)}"
            )

        async def attempt(provider: Provider, target_model: str) -> Embeddings:
            return await cast(SupportsEmbeddings, provider).embed(target_model, inputs, dimensions=dimensions)

        return await self.call(attempt)

    # -- the Provider protocol -----------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One whole answer from the first target that gives one."""
        return await self.call(lambda provider, model: provider.chat(replace(request, model=model)))

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The answer of the first target whose stream starts; after its first chunk, no other."""

        async def attempt(target: Target) -> tuple[Target, ChatChunk | None, AsyncIterator[ChatChunk]]:
            chunks = target.provider.stream(replace(request, model=target.model))
            target.state.in_flight += 1
            try:
                first: ChatChunk | None = await chunks.__anext__()
            except StopAsyncIteration:
                first = None
            except BaseException:
                target.state.in_flight -= 1
                await close_stream(chunks)
                raise
            return target, first, chunks

        target, first, chunks = await self._route(attempt)
        try:
            if first is not None:
                yield first
            async for chunk in chunks:
                yield chunk
        except DEPLOYMENT_FAILURES as exc:
            await self._failed_midway(target, exc)
            raise
        finally:
            target.state.in_flight -= 1
            await close_stream(chunks)

    async def list_models(self) -> list[ModelInfo]:
        """The alias as one model, with the smallest context window its deployments tell."""
        windows: list[int] = []

        async def window(target: Target) -> None:
            try:
                async with asyncio.timeout(LIST_MODELS_TIMEOUT_S):
                    models = await target.provider.list_models()
            except (AILabError, TimeoutError):
                return
            windows.extend(m.context_window for m in models if m.id == target.model and m.context_window)

        await asyncio.gather(*(window(t) for t in self.route.deployments))
        return [ModelInfo(id=self.route.name, context_window=min(windows, default=None), owned_by="ailab")]

    async def health(self) -> ProviderHealth:
        """Ok when a deployment not cooling down answers its own health check."""
        now = self._pacing.clock()
        available = [t for t in self.route.deployments if t.state.until <= now]

        async def ok(target: Target) -> bool:
            try:
                return (await target.provider.health()).ok
            except AILabError:
                return False

        answers = await asyncio.gather(*(ok(t) for t in available))
        total = len(self.route.deployments)
        detail = f"{sum(answers)} of {total} deployments answer"
        if len(available) < total:
            detail += f", {total - len(available)} cooling down"
        return ProviderHealth(ok=any(answers), detail=detail)

    async def can_see(self, model: str) -> bool:
        """False when a deployment or fallback that answers says its model reads no images (a request
        with images could land there); those that cannot tell now are not held against it."""
        return await self._every_target(
            SupportsVision, lambda t: cast(SupportsVision, t.provider).can_see(t.model)
        )

    async def can_use_tools(self, model: str) -> bool:
        """As :meth:`can_see`, for tools: a request with tools could land on any deployment or fallback."""
        return await self._every_target(
            SupportsTools, lambda t: cast(SupportsTools, t.provider).can_use_tools(t.model)
        )

    async def _every_target(self, protocol: type[Any], can: Callable[[Target], Awaitable[bool]]) -> bool:
        """Whether every target implements ``protocol`` and ``can(target)`` does not say no (a target
        whose provider cannot tell now, a ProviderError, is not held against the alias)."""
        for target in self.targets:
            if not implements(target.provider, protocol):
                return False
            try:
                if not await can(target):
                    return False
            except ProviderError:
                continue
        return True

    def check_request(self, request: ChatRequest) -> None:
        """What any deployment or fallback's wire cannot carry is refused before anything is sent."""
        for target in self.targets:
            if implements(target.provider, SupportsRequestCheck):
                target.provider.check_request(replace(request, model=target.model))

    async def aclose(self) -> None:
        """Nothing of its own: its deployments are the registry's providers."""

    # -- routing -------------------------------------------------------------------------------------

    def _pick(self, tried: set[str], now: float) -> Target | None:
        """A deployment not cooling down and not tried in this round, by the alias's strategy."""
        candidates = [t for t in self.route.deployments if t.state.until <= now and t.key not in tried]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        if self.route.least_busy:
            lowest = min(t.state.in_flight / t.weight for t in candidates)
            candidates = [t for t in candidates if t.state.in_flight / t.weight == lowest]
            return candidates[int(self._pacing.random() * len(candidates))]
        point = self._pacing.random() * sum(t.weight for t in candidates)
        for target in candidates:
            point -= target.weight
            if point < 0:
                return target
        return candidates[-1]

    async def _route(self, attempt: Callable[[Target], Awaitable[T]]) -> T:
        """Run ``attempt`` on deployments, then fallbacks, until one succeeds (the module docstring)."""
        book, route, clock = self._book, self.route, self._pacing.clock
        if clock() >= book.next_sync:
            await book.sync()
        failures: list[_Failure] = []
        answered: tuple[str, str] | None = None  # (key, outcome) of the attempt that ended the request
        try:
            for round_ in range(route.retries + 1):
                try:
                    if round_ and not await self._backoff(round_):
                        break
                except asyncio.CancelledError:  # the client left while the retry waited
                    answered = ("", CANCELLED)
                    raise
                tried: set[str] = set()
                while (target := self._pick(tried, clock())) is not None:
                    tried.add(target.key)
                    try:
                        if route.timeout_s is None:  # no frame of its own: this is the hot path
                            result = await attempt(target)
                        else:
                            result = await self._attempt(target, attempt)
                    except DEPLOYMENT_FAILURES as exc:
                        log.info("alias %s: %s failed (%s), trying another", route.name, target.key, exc.code)
                        failures.append(await self._failed(target, exc))
                    except Exception:
                        answered = (target.key, REJECTED)
                        raise
                    except asyncio.CancelledError:
                        answered = (target.key, CANCELLED)
                        raise
                    else:
                        answered = (target.key, OK)
                        return result
                if not tried:
                    break  # everything cools down: only the fallbacks are left
            for target in route.fallbacks:
                try:
                    result = await self._attempt(target, attempt)
                except DEPLOYMENT_FAILURES as exc:  # counted too: another alias may have it as a deployment
                    log.info("alias %s: fallback %s failed (%s)", route.name, target.key, exc.code)
                    failures.append(await self._failed(target, exc))
                except Exception:
                    answered = (target.key, REJECTED)
                    raise
                except asyncio.CancelledError:
                    answered = (target.key, CANCELLED)
                    raise
                else:
                    answered = (target.key, FALLBACK)
                    return result
            if not failures:
                answered = ("", UNAVAILABLE)
            raise self._exhausted(failures)
        finally:
            self._tally(failures, answered)

    async def _failed(self, target: Target, exc: ProviderError) -> _Failure:
        """Count ``exc`` towards ``target``'s cool-down; the failure, with whether it started one."""
        state, clock = target.state, self._pacing.clock
        was_free = state.until <= clock()
        await self._book.failed(state, self.route.cooldown, getattr(exc, "retry_after", None))
        return _Failure(target.key, exc, was_free and state.until > clock())

    def _tally(self, failures: Sequence[_Failure], answered: tuple[str, str] | None) -> None:
        """Count a request's attempts (the module docstring says which outcome each is)."""
        record, name = self._record, self.route.name
        last = len(failures) - 1
        for index, failure in enumerate(failures):
            if failure.cooled:
                outcome = COOLED_DOWN
            elif answered is None and index == last:
                outcome = FAILED
            else:
                outcome = RETRIED
            record(name, failure.key, outcome)
        if answered is not None:
            record(name, *answered)

    async def _failed_midway(self, target: Target, exc: BaseException) -> None:
        """A stream that failed after its first byte: the client gets the error, the deployment's
        cool-down counts it (a host that cuts streams is failing too)."""
        log.info("alias %s: %s failed mid-stream (%s)", self.route.name, target.key, type(exc).__name__)
        await self._book.failed(target.state, self.route.cooldown, getattr(exc, "retry_after", None))

    async def _attempt(self, target: Target, attempt: Callable[[Target], Awaitable[T]]) -> T:
        timeout = self.route.timeout_s
        if timeout is None:
            return await attempt(target)
        try:
            async with asyncio.timeout(timeout):
                return await attempt(target)
        except TimeoutError:
            raise ProviderTimeout(f"{target.key} did not start answering within {timeout:g}s") from None

    async def _backoff(self, round_: int) -> bool:
        """Wait before another round: the backoff, or until the first cool-down ends if later; False
        when that is past ``MAX_WAIT_S`` (the fallbacks come next)."""
        now = self._pacing.clock()
        wait = BACKOFF_S * 2 ** (round_ - 1)
        if all(t.state.until > now + wait for t in self.route.deployments):
            wait = min(t.state.until for t in self.route.deployments) - now
        if wait > MAX_WAIT_S:
            return False
        await self._pacing.sleep(wait)
        return True

    def _exhausted(self, failures: Sequence[_Failure]) -> ProviderError:
        name = self.route.name
        if not failures:
            now = self._pacing.clock()
            wait = max(0.0, min(t.state.until for t in self.route.deployments) - now)
            return ModelBusy(
                f"every deployment of {name!r} is cooling down after failures; try again in {wait:.0f}s",
                retry_after=max(1.0, round(wait)),
            )
        said = "; ".join(f"{f.key}: {f.error.message}" for f in failures[-6:])
        message = f"every deployment and fallback of {name!r} failed ({said})"
        errors = [f.error for f in failures]
        if all(isinstance(exc, ProviderRateLimited) for exc in errors):
            waits = [w for exc in errors if (w := cast(ProviderRateLimited, exc).retry_after) is not None]
            return ProviderRateLimited(message, min(waits) if waits else None)
        if all(isinstance(exc, ProviderTimeout) for exc in errors):
            return ProviderTimeout(message)
        return ProviderUnavailable(message)


class ForwardingAliasProvider(AliasProvider):
    """An alias whose every deployment and fallback speaks OpenAI's wire: the gateway forwards bytes."""

    async def forward_chat_completions(self, payload: dict[str, Any]) -> UpstreamResponse:
        """``payload`` forwarded to the first target that starts answering (its ``model`` rewritten)."""
        stream = bool(payload.get("stream"))

        async def attempt(target: Target) -> UpstreamResponse:
            payload["model"] = target.model
            forwarder = cast(SupportsOpenAIForward, target.provider)  # checked when the alias was built
            target.state.in_flight += 1
            body: AsyncIterator[bytes] | None = None
            handed_on = False  # a stream's body goes on to the client, and closes itself
            try:
                upstream = await forwarder.forward_chat_completions(payload)
                body = upstream.body
                if stream and upstream.content_type.startswith(EVENT_STREAM):
                    try:
                        first = await body.__anext__()
                    except StopAsyncIteration:
                        first = b""
                    handed_on = True
                    midway = functools.partial(self._failed_midway, target)
                    return replace(upstream, body=_Resumed(first, body, target.state, midway))
                return replace(upstream, body=WholeBody(await read_whole(body)))
            finally:
                if not handed_on:
                    target.state.in_flight -= 1
                    if body is not None:
                        await close_stream(body)

        return await self._route(attempt)
