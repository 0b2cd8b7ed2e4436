"""Who the generations of the current request are charged to.

The API sets the caller once it has authenticated a request (``api/deps.py``); the usage recorder reads it
when a generation ends. A context variable reaches every path that runs a model without passing the
caller through each of them: the gateway, ``/chat`` (its run executes in a task created in the request's
context, which copies the variable, so a run that outlives its connection is still charged to its user),
agents and the benchmark. Work started outside a request (the CLI's benchmark) is charged to nobody.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Protocol


class Caller(Protocol):
    """The authenticated caller as usage sees it (the API's ``Principal`` is one)."""

    @property
    def id(self) -> str:
        """The user's id."""
        ...

    @property
    def token_id(self) -> str | None:
        """The API token it authenticated with; None for an access token or a browser session."""
        ...


CALLER: ContextVar[Caller | None] = ContextVar("ailab_usage_caller", default=None)


def attribute(caller: Caller) -> None:
    """Charge what the current request (and every task it starts from now on) generates to ``caller``."""
    CALLER.set(caller)


def unattributed() -> Token[Caller | None]:
    """Start a request with no caller (for :func:`end`): where a server runs requests in one context
    (an in-process ASGI transport), one request's caller must not be charged for the next one's work."""
    return CALLER.set(None)


def end(token: Token[Caller | None]) -> None:
    """Restore the caller of before :func:`unattributed`."""
    CALLER.reset(token)
