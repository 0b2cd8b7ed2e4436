"""``@monitor_performance("name")``: time a function's calls into the monitor active in the context.

There is no global sink: pass ``sink=monitor``, or let the decorator find the monitor *active in the
current context* (a ``ContextVar``), which the API sets for every request and the CLI sets with
``with monitor.activate():``. Outside any active monitor the function simply runs unmeasured.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, ParamSpec, Protocol, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")


class PerformanceSink(Protocol):
    """Where :func:`monitor_performance` reports a call."""

    def observe_function(self, name: str, duration_s: float, *, ok: bool) -> None: ...


active_sink: ContextVar[PerformanceSink | None] = ContextVar("ailab_performance_sink", default=None)


class PerformanceDecorator:
    """The decorator :func:`monitor_performance` returns."""

    def __init__(self, name: str, sink: PerformanceSink | None) -> None:
        self.name = name
        self.sink = sink

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        name, fixed = self.name, self.sink

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                sink = fixed or active_sink.get()
                if sink is None:
                    return await fn(*args, **kwargs)
                start, ok = time.perf_counter(), False
                try:
                    result = await fn(*args, **kwargs)
                    ok = True
                    return result
                finally:
                    sink.observe_function(name, time.perf_counter() - start, ok=ok)

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            sink = fixed or active_sink.get()
            if sink is None:
                return fn(*args, **kwargs)
            start, ok = time.perf_counter(), False
            try:
                result = fn(*args, **kwargs)
                ok = True
                return result
            finally:
                sink.observe_function(name, time.perf_counter() - start, ok=ok)

        return sync_wrapper


def monitor_performance(name: str, *, sink: PerformanceSink | None = None) -> PerformanceDecorator:
    """Time every call of a sync or async function as ``name`` (histogram + stored history).

    ``sink`` fixes where calls are reported; without it, each call reports to the monitor active in its
    context (see the module docstring) or, when there is none, runs unmeasured. A call that raises is
    recorded with ``ok=False`` and the exception propagates unchanged.
    """
    return PerformanceDecorator(name, sink)
