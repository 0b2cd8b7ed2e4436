"""The OpenAI-compatible gateway: ``/v1/models``, ``/v1/chat/completions`` and ``/v1/embeddings`` (its
own module, ``gateway/embeddings.py``) over every provider.

Two paths, chosen per provider once:

- **pass-through** for providers whose backend speaks OpenAI's wire format
  (:class:`~ailab.providers.base.SupportsOpenAIForward`): the request is forwarded with only ``model``
  rewritten, and the upstream's bytes come back untouched, streamed as they arrive. Usage is read from the
  upstream's own ``usage`` (for streams the gateway asks for ``stream_options.include_usage`` and, when
  the client did not ask for it, drops that one usage-only event again), so nothing is re-encoded;
- **translation** for the others (local, anthropic, gemini, cohere, ollama...): the payload is read into
  a :class:`ChatRequest` (``gateway/translated.py``: messages, images, tools and tool results, response
  formats; a field it cannot carry is a 400, never dropped), and their :class:`ChatResult` /
  :class:`ChatChunk` become ``chat.completion`` / ``chat.completion.chunk`` JSON, tool calls included.
  A user message's ``image_url`` parts (inline ``data:`` URLs, ``gateway/images.py``) become its
  :attr:`ChatMessage.images`; a model that cannot see them, or call the tools offered, is answered 400,
  naming it, before anything is sent. On the pass-through path images and tools go as the client sent
  them, and the upstream judges them.

Pipelines are models too: ``pipeline/<name>`` runs that pipeline of agents (``gateway/pipelines.py``).

The hot path writes nothing to the database: each request is timed by a
:class:`~ailab.providers.timing.GenerationTimer`, whose one record goes to the registry's observers
(monitoring aggregates them in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, cast

import orjson

from ailab.errors import AILabError, InvalidInput, ProviderUnavailable
from ailab.providers.base import (
    ChatRequest,
    Provider,
    SupportsOpenAIForward,
    UpstreamResponse,
    Usage,
    check_request,
    close_stream,
    implements,
    read_whole,
    token_count,
)
from ailab.providers.registry import ProviderRegistry
from ailab.providers.timing import CANCELLED, GenerationTimer
from ailab.providers.upstream_errors import error_message, scrub
from ailab.services.chat.turns import PipelineLookup
from ailab.services.gateway.chunks import (
    DONE,
    ChunkWriter,
    assistant_message,
    completion,
    openai_finish_reason,
    sse_error,
    tool_call_pieces,
    wants_usage,
)
from ailab.services.gateway.embeddings import GatewayEmbeddings
from ailab.services.gateway.pipelines import PipelineCompletions, pipeline_name, to_turn
from ailab.services.gateway.request import BadRequest, json_object, validate_request
from ailab.services.gateway.translated import refuse_for_pipeline, to_chat_request

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
ERROR_KEY = b'"error"'  # in a streamed event: the upstream failed mid-stream
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


@dataclass(slots=True)
class GatewayReply:
    """What the route sends back: a whole body, or a stream of bytes."""

    status: int
    content_type: str
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None


def parse_request(body: bytes) -> dict[str, Any]:
    """The JSON object of a chat completions request, checked against :class:`ChatCompletionRequest`."""
    payload = json_object(body)
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise BadRequest("'model' is required (a string like 'local/smollm2-135m-instruct')")
    validate_request(payload)  # the declared shape; the payload itself goes on as it came
    return payload


async def _check(provider: Provider, request: ChatRequest) -> None:
    """What the backend cannot do for the request (images for a model that cannot see, tools for one
    that cannot call them, a field its wire cannot carry) is a bad request: 400, OpenAI's answer to it,
    before anything is sent (a stream could only say it after its 200)."""
    try:
        await check_request(provider, request)
    except InvalidInput as exc:
        raise BadRequest(exc.message) from None


def _usage_from(obj: Any) -> tuple[int, int]:
    if isinstance(obj, dict):
        usage = obj.get("usage")
        if isinstance(usage, dict):
            return token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
    return 0, 0


class Gateway:
    """Serves OpenAI's chat completions and embeddings APIs from the provider registry."""

    def __init__(self, providers: ProviderRegistry, pipelines: PipelineLookup | None = None) -> None:
        self._providers = providers
        self._pipelines = PipelineCompletions(pipelines) if pipelines is not None else None
        self._embeddings = GatewayEmbeddings(providers)

    async def models(self) -> dict[str, Any]:
        """Every model of every configured backend, then every alias and pipeline, as OpenAI's model list."""
        data = [
            {"id": f"{name}/{info.id}", "object": "model", "created": 0, "owned_by": info.owned_by or name}
            for name, info in await self._providers.list_models()
        ]
        # Model aliases (services/routing) by their bare names.
        data += [
            {"id": a, "object": "model", "created": 0, "owned_by": "ailab"} for a in self._providers.aliases
        ]
        if self._pipelines is not None:
            ids = await self._pipelines.model_ids()
            data += [{"id": i, "object": "model", "created": 0, "owned_by": "ailab"} for i in ids]
        return {"object": "list", "data": data}

    async def chat_completions(
        self, body: bytes, *, requester: str | None = None, request_id: str = ""
    ) -> GatewayReply:
        """Answer one chat completions request (see the module docstring for the paths).

        ``requester`` (the user's id) queues fairly at shared backends; ``request_id`` names a pipeline run.
        """
        payload = parse_request(body)
        model_id: str = payload["model"]
        name = pipeline_name(model_id)
        if name is not None and self._pipelines is not None:
            return await self._pipeline(name, payload, requester, request_id)
        provider, model = self._providers.resolve(model_id)
        forwards = implements(provider, SupportsOpenAIForward)  # known per class (every alias is "alias")
        if forwards:
            return await self._forward(provider, model, payload)
        request = to_chat_request(payload, model, requester)
        await _check(provider, request)
        if payload.get("stream"):
            return GatewayReply(200, EVENT_STREAM, stream=self._translate_stream(provider, request, payload))
        return await self._translate(provider, request, model_id)

    async def embeddings(self, body: bytes) -> GatewayReply:
        """Answer one embeddings request (``gateway/embeddings.py``)."""
        return GatewayReply(200, JSON, body=await self._embeddings.create(body))

    async def _pipeline(
        self, name: str, payload: dict[str, Any], requester: str | None, request_id: str
    ) -> GatewayReply:
        assert self._pipelines is not None
        pipeline = await self._pipelines.resolve(name)
        request = to_chat_request(payload, name)
        refuse_for_pipeline(request, payload["model"])
        turn = to_turn(request, requester, request_id)
        model_id = payload["model"]
        if payload.get("stream"):
            chunks = PipelineCompletions.stream(pipeline, model_id, turn, include_usage=wants_usage(payload))
            return GatewayReply(200, EVENT_STREAM, stream=chunks)
        return GatewayReply(200, JSON, body=await PipelineCompletions.complete(pipeline, model_id, turn))

    # -- pass-through -----------------------------------------------------------------------------
    async def _forward(self, provider: Provider, model: str, payload: dict[str, Any]) -> GatewayReply:
        forwarder = cast(SupportsOpenAIForward, provider)  # checked once per provider, not per request
        payload["model"] = model
        stream = bool(payload.get("stream"))
        hide_usage = stream and not wants_usage(payload)
        if hide_usage:  # ask for usage anyway, to account for it; the client does not see it
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        timer = GenerationTimer(self._providers, provider.name, model, stream=stream)
        try:
            upstream = await forwarder.forward_chat_completions(payload)
        except (AILabError, asyncio.CancelledError) as exc:  # cancelled: the client hung up
            timer.finish(exc)
            raise
        # An error status was raised by the provider, rebuilt with its secrets scrubbed (api/errors.py).
        if not stream or not upstream.content_type.startswith(EVENT_STREAM):
            try:
                data = await read_whole(upstream.body)
            except (AILabError, asyncio.CancelledError) as exc:
                timer.finish(exc)
                raise
            try:  # a 200 that is no JSON (a proxy's HTML page) must not reach the client as an answer
                answer = orjson.loads(data)
            except orjson.JSONDecodeError:
                timer.finish("invalid_answer")
                raise ProviderUnavailable(
                    f"{provider.name} answered with an invalid body (not JSON)"
                ) from None
            timer.tokens(*(_usage_from(answer) if _USAGE_OBJECT.search(data) else (0, 0)))
            timer.finish()
            return GatewayReply(upstream.status, JSON, body=data)
        return GatewayReply(
            upstream.status,
            upstream.content_type,
            stream=self._pass_stream(provider, upstream, timer, hide_usage),
        )

    async def _pass_stream(
        self, provider: Provider, upstream: UpstreamResponse, timer: GenerationTimer, hide_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        """The upstream's bytes, whole events at a time; only a usage event we asked for is dropped,
        and an error event is rebuilt, its secrets scrubbed (an upstream may quote the key it got)."""
        body = upstream.body
        secret = upstream.secret.encode() if upstream.secret else None
        tail = b""
        error: BaseException | str | None = CANCELLED
        failed = False
        try:
            async for chunk in body:
                if timer.first_at is None:  # bytes, not counted as tokens: the usage event says
                    timer.first()
                data = tail + chunk if tail else chunk
                end = data.rfind(b"\n\n") + 2
                if end == 1:  # no complete event yet
                    tail = data
                    continue
                out, tail = (data[:end], data[end:]) if end < len(data) else (data, b"")
                if _USAGE_OBJECT.search(out):
                    out, tokens = self._take_usage(out, hide_usage)
                    timer.tokens(*tokens)
                if ERROR_KEY in out or (secret is not None and secret in out):
                    failed = failed or ERROR_KEY in out
                    out = cleaned_events(out, upstream.secret, provider.name)
                if out:
                    yield out
            if tail:
                yield cleaned_events(tail, upstream.secret, provider.name)
            error = "upstream_error" if failed else None
        except AILabError as exc:  # stalled or cut mid-stream: say so in the stream, then end it
            error = exc
            yield sse_error(exc.message, exc.code, exc.status)
            yield DONE
        finally:
            await close_stream(body)
            timer.finish(error)

    @staticmethod
    def _take_usage(block: bytes, hide_usage: bool) -> tuple[bytes, tuple[int, int]]:
        """The usage of the events in ``block`` and the block without the usage-only event if hidden."""
        tokens = (0, 0)
        kept: list[bytes] = []
        for event in block.split(b"\n\n"):
            if event and _USAGE_OBJECT.search(event):
                line = event.strip()
                try:
                    obj = orjson.loads(line[5:] if line.startswith(b"data:") else line)
                except orjson.JSONDecodeError:
                    obj = None
                tokens = _usage_from(obj) if obj is not None else tokens
                if hide_usage and isinstance(obj, dict) and not obj.get("choices"):
                    continue
            kept.append(event)
        return b"\n\n".join(kept), tokens

    # -- translation ------------------------------------------------------------------------------
    async def _translate(self, provider: Provider, request: ChatRequest, model_id: str) -> GatewayReply:
        timer = GenerationTimer(self._providers, provider.name, request.model, stream=False)
        try:
            result = await provider.chat(request)
        except (AILabError, asyncio.CancelledError) as exc:  # cancelled: the client hung up
            timer.finish(exc)
            raise
        usage = result.usage or Usage()
        timer.usage = usage
        timer.finish()
        message = assistant_message(result.content, result.tool_calls)
        return GatewayReply(
            200, JSON, body=completion(model_id, message, usage, openai_finish_reason(result.finish_reason))
        )

    async def _translate_stream(
        self, provider: Provider, request: ChatRequest, payload: dict[str, Any]
    ) -> AsyncGenerator[bytes, None]:
        """``chat.completion.chunk`` events from the provider's chunks, then ``[DONE]``."""
        chunks = ChunkWriter(payload["model"], include_usage=wants_usage(payload))
        event = chunks.delta

        timer = GenerationTimer(self._providers, provider.name, request.model, stream=True)
        finish: str | None = None
        error: BaseException | str | None = CANCELLED
        stream = provider.stream(request)
        try:
            yield event({"role": "assistant", "content": ""})
            async for chunk in stream:
                if timer.take(chunk):
                    yield event({"content": chunk.delta})
                if chunk.tool_calls:
                    yield event({"tool_calls": tool_call_pieces(chunk.tool_calls)})
                finish = chunk.finish_reason or finish
            yield event({}, openai_finish_reason(finish))
            if chunks.include_usage:
                yield chunks.usage(timer.final_usage)
            yield DONE
            error = None
        except AILabError as exc:
            error = exc
            yield sse_error(exc.message, exc.code, exc.status)
            yield DONE
        finally:
            await close_stream(stream)
            timer.finish(error)


def cleaned_events(block: bytes, secret: str | None, provider: str) -> bytes:
    """``block`` (whole SSE events) with error events rebuilt in OpenAI's shape and secrets scrubbed."""
    return b"\n\n".join(_cleaned_event(event, secret, provider) for event in block.split(b"\n\n"))


def _cleaned_event(event: bytes, secret: str | None, provider: str) -> bytes:
    line = event.strip()
    data: Any = None
    if line.startswith(b"data:") and ERROR_KEY in line:
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(line[5:])
    if isinstance(data, dict) and "error" in data:
        message = scrub(error_message(line[5:].strip()), secret)
        return sse_error(f"{provider} failed mid-stream: {message}", "upstream_error", 502).rstrip(b"\n")
    return scrub(event.decode("utf-8", "replace"), secret).encode() if secret else event
