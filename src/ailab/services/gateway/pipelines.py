"""Pipelines as models of the OpenAI-compatible API: ``pipeline/<name>`` in ``/v1/chat/completions``.

Any OpenAI client can talk to the organisation of agents: the request's last message (a user's) is the
turn, the messages before it are the history, ``max_tokens`` and ``temperature`` apply to every step.
The API is stateless, so the run belongs to no session and its agent steps are not stored: they come
back with the answer, in the field that reasoning models use for their thinking (the
``reasoning_content`` of DeepSeek, vLLM and llama.cpp's server), which OpenAI clients pass through and
chat UIs show folded:

- JSON: ``message.content`` is the final answer, ``message.reasoning_content`` the agent trace (the
  ``thought_process`` of ``/chat``);
- stream: while the agents work, their text streams as ``delta.reasoning_content``, each step headed
  ``[Agent]`` and closed by its routing, ``[Agent -> next]``; then the final answer comes as
  ``delta.content``. A pipeline without agents (``direct``) streams its answer as ``content`` at once.

A failure mid-run is an OpenAI error event in the stream, or the error's status and OpenAI's error shape.

Images in the last message go with the turn to every agent's model; a model among them that cannot see
refuses them (422, naming it) before anything is sent to it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from ailab.errors import AILabError, InvalidInput, ModelNotFound, NotFound
from ailab.providers.base import ChatRequest
from ailab.services.chat.turns import AgentStart, ChatPipeline, Decision, Delta, Final, PipelineLookup, Turn
from ailab.services.gateway.chunks import DONE, ChunkWriter, completion, sse_error

PIPELINE_PREFIX = "pipeline/"


def pipeline_name(model_id: str) -> str | None:
    """The pipeline a model id names (``pipeline/agents`` -> ``agents``), or None for other models."""
    return model_id[len(PIPELINE_PREFIX) :] if model_id.startswith(PIPELINE_PREFIX) else None


def to_turn(request: ChatRequest, owner_id: str | None, request_id: str) -> Turn:
    """The turn of a (validated) chat request: its last message, a user's, and the others as history."""
    *history, last = request.messages
    if last.role != "user" or not last.content.strip():
        raise InvalidInput("a pipeline answers a conversation whose last message is the user's, with text")
    return Turn(
        session_id=None,
        owner_id=owner_id,
        request_id=request_id,
        message=last.content,
        history=history,
        images=last.images,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
    )


class PipelineCompletions:
    """Runs ``pipeline/<name>`` chat completions (see the module docstring)."""

    def __init__(self, pipelines: PipelineLookup) -> None:
        self._pipelines = pipelines

    async def model_ids(self) -> list[str]:
        """``pipeline/<name>`` for every pipeline that can run now."""
        return [PIPELINE_PREFIX + name for name in await self._pipelines.names()]

    async def resolve(self, name: str) -> ChatPipeline:
        """The pipeline ``name``; ModelNotFound (404, as for any unknown model) otherwise."""
        try:
            return await self._pipelines.resolve(name)
        except (InvalidInput, NotFound):  # unknown, or its agents are gone
            known = ", ".join(await self.model_ids())
            raise ModelNotFound(f"unknown model 'pipeline/{name}': the pipelines are {known}") from None

    @staticmethod
    async def complete(pipeline: ChatPipeline, model_id: str, turn: Turn) -> bytes:
        """One whole ``chat.completion`` (JSON bytes)."""
        final: Final | None = None
        async with aclosing(pipeline.run(turn)) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, Final):
                    final = event
        if final is None:
            raise AILabError("the pipeline ended without an answer")
        message: dict[str, Any] = {"role": "assistant", "content": final.response}
        if final.thought_process:
            message["reasoning_content"] = final.thought_process
        return completion(model_id, message, final.usage, "stop")

    @staticmethod
    async def stream(
        pipeline: ChatPipeline, model_id: str, turn: Turn, *, include_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        """``chat.completion.chunk`` events of the run, then ``[DONE]``."""
        chunks = ChunkWriter(model_id, include_usage=include_usage)
        answered = False
        yield chunks.delta({"role": "assistant", "content": ""})
        try:
            async with aclosing(pipeline.run(turn)) as events:  # type: ignore[type-var]
                async for event in events:
                    if isinstance(event, Delta):
                        answered = answered or event.agent is None
                        key = "content" if event.agent is None else "reasoning_content"
                        yield chunks.delta({key: event.text})
                    elif isinstance(event, AgentStart):
                        yield chunks.delta({"reasoning_content": f"[{event.agent}] "})
                    elif isinstance(event, Decision):
                        yield chunks.delta({"reasoning_content": f"\n[{event.agent} -> {event.next}]\n"})
                    elif isinstance(event, Final):
                        if not answered and event.response:
                            yield chunks.delta({"content": event.response})
                        yield chunks.delta({}, "stop")
                        if include_usage:
                            yield chunks.usage(event.usage)
        except AILabError as exc:
            yield sse_error(exc.message, exc.code, exc.status)
        yield DONE
