"""The contract between ``/chat`` and the pipelines that produce an answer.

A chat turn is: store the user's message, run a pipeline, stream its events to the client, store the
final answer. The chat service (``services/chat/service.py``) does the storing and the streaming; a pipeline
(``direct``: one model; ``agents``: CEO -> Worker/QA/Reflection, see ``services/chat/agents``) only turns a
:class:`Turn` into :data:`PipelineEvent` values. Events map one to one onto the SSE events of the
public contract (``delta``, ``agent_start``, ``decision``, ``agent_end``, ``final``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from ailab.providers.base import ChatMessage, ImagePart, Usage


@dataclass(frozen=True, slots=True)
class Turn:
    """One user request to a pipeline, with the session's earlier messages as context.

    ``session_id`` None: a turn of no session (the OpenAI-compatible API is stateless), whose agent
    steps are not stored; they reach the client in the answer only.
    """

    session_id: str | None
    owner_id: str | None
    request_id: str
    message: str
    history: list[ChatMessage] = field(default_factory=list)
    model: str | None = None  # "provider/model"; None: the pipeline's or the server's default
    max_tokens: int | None = None
    temperature: float | None = None
    run_id: str | None = None  # the /chat run this turn is (its agent steps name it)
    # The attached files: documents' text (headed by file and page) and images, for the model only.
    context: str = ""
    images: tuple[ImagePart, ...] = ()

    def user_message(self, content: str | None = None) -> ChatMessage:
        """The user's message as the model gets it: ``content`` (the turn's message by default) after
        the attached documents' text, with the attached images."""
        text = self.message if content is None else content
        if self.context:
            text = f"{self.context}\n\n{text}"
        return ChatMessage("user", text, self.images)


@dataclass(frozen=True, slots=True)
class AgentStart:
    agent: str


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    agent: str
    next: str  # an agent's name or "end"


@dataclass(frozen=True, slots=True)
class AgentEnd:
    agent: str


@dataclass(frozen=True, slots=True)
class Final:
    """The answer of the turn; ``thought_process`` is the agent trace (None for ``direct``)."""

    response: str
    model: str | None
    usage: Usage
    thought_process: str | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None


PipelineEvent = AgentStart | Delta | Decision | AgentEnd | Final


class ChatPipeline(Protocol):
    """Something that answers a turn as a stream of events, ending with exactly one :class:`Final`.

    Closing the iterator early (the client went away) must stop any generation within a second.
    """

    name: str

    def run(self, turn: Turn) -> AsyncIterator[PipelineEvent]: ...


class PipelineLookup(Protocol):
    """Finds a pipeline by name (``direct``, ``agents`` or one configured at run time)."""

    async def resolve(self, name: str) -> ChatPipeline:
        """The pipeline called ``name``; raises ``InvalidInput`` naming the known ones."""
        ...

    async def names(self) -> list[str]:
        """The names of every pipeline that can be used now."""
        ...
