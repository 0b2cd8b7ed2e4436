"""A ``/chat`` turn: validate, store the user's message, run the pipeline, store the answer.

The order is what makes a turn safe to interrupt:

1. the pipeline and the model are resolved first, so an unknown one changes nothing;
2. the message alone must fit the model's context window with room for the answer (counted with the
   model's own tokenizer when the provider offers one, approximated from characters otherwise);
3. one write transaction (a transaction function: one hop on SQLite) finds or creates the session,
   reads its recent messages and stores the user's message; another user's session rolls it back. The
   earlier messages are then trimmed to what fits the window beside the message;
4. the pipeline runs; its events go to the caller as they come, with no database write per token;
5. the answer is stored once, when the pipeline ends: ``complete``, ``error`` (what was produced before
   the failure), ``cancelled`` (its run was cancelled) or ``cut_off`` (its consumer went away; the
   pipeline is closed, which stops generation), with the end of the turn's run in the same transaction.
   That last write runs in its own task, shielded from the cancellation that ended the consumer.

A turn therefore always stores exactly two messages, whatever the pipeline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.repos import sessions as repo
from ailab.db.repos.runs import CANCELLED, DONE, FAILED, NewRun, RunEnd, insert_run
from ailab.errors import AILabError, InvalidInput, NotFound
from ailab.providers.base import (
    ChatMessage,
    Provider,
    SupportsVision,
    check_can_see,
    close_stream,
    implements,
)
from ailab.providers.registry import ProviderRegistry
from ailab.services.chat.turns import (
    AgentStart,
    ChatPipeline,
    Delta,
    Final,
    PipelineEvent,
    PipelineLookup,
    Turn,
)
from ailab.services.files.context import AttachmentReader, Attachments
from ailab.services.sessions.service import SessionService, new_session_id

log = logging.getLogger("ailab.chat")
HISTORY_LIMIT = 200  # messages read back as context before trimming to the window
DEFAULT_CONTEXT_WINDOW = 8192
ANSWER_RESERVE_TOKENS = 512  # room left for the answer when the request sets no max_tokens
MESSAGE_OVERHEAD_TOKENS = 8  # role markers of a chat template, per message
TEMPLATE_RESERVE_TOKENS = 64  # a default system prompt some templates add
CHARS_PER_TOKEN = 4  # the usual approximation for English text
CONTEXT_ROLES = ("user", "assistant", "system")
MAX_CACHED_WINDOWS = 256
# Of the window left beside the message and the answer, what attached documents may take (the rest is
# for the conversation so far; approximate counts need a margin too).
DOCUMENTS_SHARE = 0.6


async def can_see(provider: Provider, model: str) -> bool:
    """Whether the model reads images (False when its backend cannot say now)."""
    try:
        return implements(provider, SupportsVision) and await provider.can_see(model)
    except AILabError:
        return False


def _with_sources(final: Final, sources: str) -> Final:
    """``final`` with the attached files' pages it was given named in its thought process."""
    line = f"Files used: {sources}"
    thought = f"{final.thought_process}\n\n{line}" if final.thought_process else line
    return dataclasses.replace(final, thought_process=thought)


@runtime_checkable
class SupportsTokenCount(Protocol):
    """A provider that can count tokens with its model's tokenizer (the embedded model)."""

    async def count_tokens(self, texts: list[str], model: str = "") -> list[int]: ...


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A validated ``POST /chat`` body."""

    message: str
    session_id: str | None = None
    model: str | None = None
    pipeline: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    files: tuple[str, ...] = ()  # the caller's file ids (POST /files)


@dataclass(slots=True)
class PreparedTurn:
    """A turn whose user message is stored and whose pipeline is ready to run."""

    owner_id: str | None
    session_id: str
    pipeline: ChatPipeline
    turn: Turn
    final: Final | None = None
    status: str = "cut_off"  # complete | error | cut_off | cancelled
    error: str | None = None
    stored: asyncio.Event = field(default_factory=asyncio.Event)
    answer: str = ""  # the stored answer: the final response, or what was produced before the end
    # The run's events so far (its stored record gets the id of its last event, the one after these).
    events_emitted: Callable[[], int] = lambda: 0
    sources: str = ""  # the attached files' pages given to the model, for the thought process

    @property
    def run_id(self) -> str | None:
        """The turn's run (None: a turn that is not one)."""
        return self.turn.run_id

    def run_end(self) -> RunEnd | None:
        """How the run of this turn ended, to store with its answer."""
        if self.run_id is None:
            return None
        # Its last event (final, error or cancelled) goes out once this is stored: it is the next one.
        last_event_id = self.events_emitted() + 1
        if self.status == "complete":
            return RunEnd(self.run_id, DONE, None, last_event_id)
        status = CANCELLED if self.status == "cancelled" else FAILED
        error = self.error or ("cancelled" if status == CANCELLED else "interrupted")
        return RunEnd(self.run_id, status, error, last_event_id)


async def fit_history(
    provider: Provider,
    history: Sequence[ChatMessage],
    message: str,
    *,
    context_window: int,
    max_tokens: int | None,
    model: str = "",
) -> list[ChatMessage]:
    """The newest part of ``history`` that fits the window with ``message`` and room for the answer.

    Raises InvalidInput when the message alone does not fit.
    """
    texts = [m.content for m in history] + [message]
    reserve = max_tokens if max_tokens is not None else min(ANSWER_RESERVE_TOKENS, context_window // 4)
    budget = context_window - reserve - TEMPLATE_RESERVE_TOKENS
    counts: list[int] | None = None
    if implements(provider, SupportsTokenCount):
        # A byte-level tokenizer never makes more tokens than UTF-8 bytes: when even that bound fits,
        # everything fits and the tokenizer (a hop to the model's thread) is not needed.
        sizes = [len(text.encode()) for text in texts]
        if sum(sizes) + MESSAGE_OVERHEAD_TOKENS * len(texts) <= budget:
            return list(history)
        try:
            counts = await provider.count_tokens(texts, model)
        except AILabError:  # the model cannot count now (its generation will say why): approximate
            counts = None
    if counts is None:
        counts = [len(text) // CHARS_PER_TOKEN + 1 for text in texts]
    budget -= counts[-1] + MESSAGE_OVERHEAD_TOKENS
    if budget < 0:
        raise InvalidInput(
            f"the message and max_tokens do not fit the model's context window of {context_window} tokens"
        )
    kept = 0
    for count in reversed(counts[:-1]):
        cost = count + MESSAGE_OVERHEAD_TOKENS
        if cost > budget:
            break
        budget -= cost
        kept += 1
    return list(history[len(history) - kept :]) if kept else []


def open_turn(
    conn: Connection,
    owner_id: str | None,
    session_id: str | None,
    title: str,
    message: str,
    *,
    run: NewRun | None = None,
    files: list[dict[str, Any]] | None = None,
) -> tuple[str, list[ChatMessage], list[str]]:
    """Transaction function: the session (created when new), its recent context, the user's message
    (and the turn's run, when it is one), and the ids of the files its earlier messages came with
    (newest first).

    Raises NotFound for another user's session; IntegrityError when a new session id was created
    concurrently (the caller tries again: then it exists).
    """
    found = repo.find_session(conn, session_id) if session_id else None
    if found is not None and found.owner_id != owner_id:
        raise NotFound(f"session {session_id!r} not found")
    run_id = run.id if run is not None else None
    history: list[ChatMessage] = []
    earlier: dict[str, None] = {}
    if found is None:  # a new session has no history to read
        session_id = session_id or new_session_id()
        first = repo.NewMessage(session_id, "user", message, run_id=run_id, files=files)
        repo.start_session(conn, session_id=session_id, owner_id=owner_id, title=title, first=first)
    else:
        session_id = found.id
        recent = repo.recent_messages(conn, session_id, HISTORY_LIMIT)
        history = [ChatMessage(role, text) for role, text, _ in recent if role in CONTEXT_ROLES and text]
        for _, _, attached in reversed(recent):
            earlier.update((item["id"], None) for item in attached or ())
        repo.append_message(conn, repo.NewMessage(session_id, "user", message, run_id=run_id, files=files))
    if run is not None:
        insert_run(conn, run, session_id=session_id, owner_id=owner_id)
    return session_id, history, list(earlier)


class ChatService:
    """Runs ``/chat`` turns (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        sessions: SessionService,
        providers: ProviderRegistry,
        pipelines: PipelineLookup,
        settings: Settings,
        *,
        attachments: AttachmentReader | None = None,
    ) -> None:
        self._db = db
        self._sessions = sessions
        self._providers = providers
        self._pipelines = pipelines
        self._settings = settings
        self._attachments = attachments
        self._windows: OrderedDict[str, int] = OrderedDict()  # bounded: model names come from callers
        self._pending: set[asyncio.Task[None]] = set()

    async def prepare(
        self, owner_id: str | None, data: ChatInput, request_id: str, run: NewRun | None = None
    ) -> PreparedTurn:
        """Check the request, trim the context and store the user's message (with ``run``, the turn's
        run: its pipeline and model are filled in here)."""
        if not data.message.strip():
            raise InvalidInput("message must not be empty")
        pipeline_name = data.pipeline or self._settings.default_pipeline
        pipeline = await self._pipelines.resolve(pipeline_name)
        provider, model = self._providers.resolve(data.model)
        if run is not None:
            run.pipeline, run.model = pipeline_name, data.model or f"{provider.name}/{model}"
        title = " ".join(data.message.split())[:80]
        window = await self._context_window(provider, model)
        fit = functools.partial(
            fit_history, provider, context_window=window, max_tokens=data.max_tokens, model=model
        )
        attached = Attachments()
        if data.files:
            attached = await self._read_attachments(
                owner_id, data, provider, model, window=window, file_ids=data.files
            )
        as_sent = f"{attached.context}\n\n{data.message}" if attached.context else data.message
        await fit([], as_sent)  # refuses a message that cannot fit before anything is stored
        args = (owner_id, data.session_id, title, data.message)
        files = attached.files or None
        try:
            session_id, history, earlier = await self._db.run_write(open_turn, *args, run=run, files=files)
        except IntegrityError:  # the same new session id was created concurrently: now it exists
            session_id, history, earlier = await self._db.run_write(open_turn, *args, run=run, files=files)
        if earlier and not data.files:
            # A follow-up question: the files the conversation came with are still its subject. Those
            # deleted or unreadable since are left out (the message is stored: no refusal now).
            attached = await self._read_attachments(
                owner_id, data, provider, model, window=window, file_ids=earlier, follow_up=True
            )
            as_sent = f"{attached.context}\n\n{data.message}" if attached.context else data.message
        if history:
            try:
                history = await fit(history, as_sent)
            except InvalidInput:  # only if the count above was exact and this one approximated
                history = []
        turn = Turn(
            session_id=session_id,
            owner_id=owner_id,
            request_id=request_id,
            message=data.message,
            history=history,
            model=data.model,
            max_tokens=data.max_tokens,
            temperature=data.temperature,
            run_id=run.id if run is not None else None,
            context=attached.context,
            images=attached.images,
        )
        return PreparedTurn(
            owner_id=owner_id, session_id=session_id, pipeline=pipeline, turn=turn, sources=attached.sources
        )

    async def _read_attachments(
        self,
        owner_id: str | None,
        data: ChatInput,
        provider: Provider,
        model: str,
        *,
        window: int,
        file_ids: Sequence[str],
        follow_up: bool = False,
    ) -> Attachments:
        """The files for the model; documents get a share of the window the message leaves. Files of
        earlier messages (``follow_up``) are skipped when unreadable, their images when the model is blind."""
        if self._attachments is None:
            if follow_up:
                return Attachments()
            raise InvalidInput("this server takes no files")
        reserve = data.max_tokens if data.max_tokens is not None else min(ANSWER_RESERVE_TOKENS, window // 4)
        left = window - reserve - TEMPLATE_RESERVE_TOKENS - len(data.message) // CHARS_PER_TOKEN
        budget_chars = max(0, int(left * DOCUMENTS_SHARE)) * CHARS_PER_TOKEN
        attached = await self._attachments.read(
            owner_id, file_ids, data.message, budget_chars, skip_unusable=follow_up
        )
        if attached.images:
            if not follow_up:
                await check_can_see(provider, model)
            elif not await can_see(provider, model):
                attached = dataclasses.replace(attached, images=())
        return attached

    async def _context_window(self, provider: Provider, model: str) -> int:
        key = f"{provider.name}/{model}"
        window = self._windows.get(key)
        if window is None:
            window = DEFAULT_CONTEXT_WINDOW
            try:
                models = await provider.list_models()
            except AILabError:
                models = []
            for info in models:
                if (info.id == model or not model) and info.context_window:
                    window = info.context_window
                    break
            self._windows[key] = window
            if len(self._windows) > MAX_CACHED_WINDOWS:
                self._windows.popitem(last=False)
        return window

    async def run(self, prepared: PreparedTurn) -> AsyncIterator[PipelineEvent]:
        """The pipeline's events; the answer is stored when they end, however they end."""
        events = prepared.pipeline.run(prepared.turn)
        parts: list[str] = []
        try:
            async for produced in events:
                event = produced
                if isinstance(event, Delta):
                    parts.append(event.text)
                elif isinstance(event, AgentStart):
                    parts.clear()  # a cut-off answer is the current agent's text
                elif isinstance(event, Final):
                    if prepared.sources:
                        event = _with_sources(event, prepared.sources)
                    prepared.final = event
                    prepared.status = "complete"
                yield event
            if prepared.final is None:
                prepared.status, prepared.error = "error", "the pipeline ended without an answer"
        except AILabError as exc:
            prepared.status, prepared.error = "error", exc.message
            raise
        except Exception as exc:
            prepared.status, prepared.error = "error", f"internal error ({type(exc).__name__})"
            raise
        finally:
            # A task of its own, so neither a cancelled request nor a closed generator loses the answer.
            task = asyncio.get_running_loop().create_task(self._finish(events, prepared, "".join(parts)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            await asyncio.shield(task)

    async def _finish(
        self, events: AsyncIterator[PipelineEvent], prepared: PreparedTurn, partial: str
    ) -> None:
        try:
            await close_stream(events)  # stops a running generation
        except Exception:
            log.exception("closing the pipeline of session %s failed", prepared.session_id)
        final = prepared.final
        prepared.answer = final.response if final is not None else partial
        try:
            await self._sessions.append(
                prepared.owner_id,
                prepared.session_id,
                "assistant",
                prepared.answer,
                thought_process=final.thought_process if final is not None else None,
                model=final.model if final is not None else prepared.turn.model,
                prompt_tokens=final.usage.prompt_tokens if final is not None else None,
                completion_tokens=final.usage.completion_tokens if final is not None else None,
                status=prepared.status,
                run_end=prepared.run_end(),
            )
        except NotFound:
            log.info("session %s was deleted before its answer could be stored", prepared.session_id)
        except Exception:
            log.exception("storing the answer of session %s failed", prepared.session_id)
        finally:
            prepared.stored.set()

    async def wait_idle(self) -> None:
        """Wait until every answer being stored is stored (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
