"""The pipelines ``/chat`` can run, by name.

:class:`Pipelines` is the server's :class:`~ailab.services.chat.turns.PipelineLookup`: built-in pipelines
(``direct`` here; ``agents`` from ``services/chat/agents``) are registered at start with :meth:`register`.
Pipelines defined at run time (stored in the database) are added by a lookup that wraps this one, so
the chat service only ever sees the protocol.
"""

from __future__ import annotations

from ailab.errors import NotFound
from ailab.services.chat.turns import ChatPipeline


class Pipelines:
    """A name -> pipeline table; a later registration under the same name replaces the earlier one."""

    def __init__(self, pipelines: list[ChatPipeline] | None = None) -> None:
        self._pipelines: dict[str, ChatPipeline] = {}
        for pipeline in pipelines or []:
            self.register(pipeline)

    def register(self, pipeline: ChatPipeline) -> None:
        """Make ``pipeline`` available under its ``name``."""
        self._pipelines[pipeline.name] = pipeline

    async def resolve(self, name: str) -> ChatPipeline:
        """The pipeline called ``name``; NotFound (404) naming the known ones otherwise."""
        pipeline = self._pipelines.get(name)
        if pipeline is None:
            known = ", ".join(sorted(self._pipelines)) or "none"
            raise NotFound(f"unknown pipeline {name!r}; known pipelines: {known}")
        return pipeline

    async def names(self) -> list[str]:
        """Every registered pipeline's name, sorted."""
        return sorted(self._pipelines)
