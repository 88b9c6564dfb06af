"""A fake OpenAI-compatible upstream: a real HTTP server on loopback speaking the wire format
(JSON and SSE), recording what it received, and failing on command."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Failure:
    kind: str  # status | hang | reset | die_mid_stream
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    after_chunks: int = 2
    message: str | None = None


@dataclass
class FakeOpenAI:
    reply: str = "Hello from the fake upstream, how can I help?"
    # When set, the reply to each request is computed from its body instead.
    respond: Callable[[dict[str, Any]], str] | None = None
    # Requests this says yes to get a 500.
    fail_if: Callable[[dict[str, Any]], bool] | None = None
    include_usage: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stream_delay_s: float = 0.0
    # A stream waits this long after its last content chunk (before it finishes).
    pause_before_finish_s: float = 0.0
    cancelled_streams: int = 0
    completed_streams: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        message: str | None = None,
    ) -> None:
        failure = Failure("status", status=status, retry_after=retry_after, message=message)
        self.failures += [failure] * times

    def hang_next(self, seconds: float, times: int = 1) -> None:
        self.failures += [Failure("hang", seconds=seconds)] * times

    def reset_next(self, times: int = 1) -> None:
        self.failures += [Failure("reset")] * times

    def die_mid_stream_next(self, after_chunks: int = 2) -> None:
        self.failures.append(Failure("die_mid_stream", after_chunks=after_chunks))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _take_failure(
        self, request: web.Request, streaming: bool
    ) -> web.StreamResponse | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        if failure.kind == "die_mid_stream" and not streaming:
            return None
        self.failures.pop(0)
        if failure.kind == "status":
            headers = {"retry-after": failure.retry_after} if failure.retry_after else {}
            message = failure.message or f"fake failure {failure.status}"
            body = {"error": {"message": message, "type": "server_error"}}
            return web.json_response(body, status=failure.status, headers=headers)
        if failure.kind == "hang":
            await asyncio.sleep(failure.seconds)
            return web.json_response({"error": {"message": "too late"}}, status=500)
        if failure.kind == "reset":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        return await self._stream(request, die_after=failure.after_chunks)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers_seen.append(dict(request.headers))
        streaming = bool(body.get("stream"))
        if self.fail_if is not None and self.fail_if(body):
            return web.json_response({"error": {"message": "fake outage"}}, status=500)
        failed = await self._take_failure(request, streaming)
        if failed is not None:
            return failed
        if streaming:
            return await self._stream(request)
        reply = self.respond(body) if self.respond else self.reply
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion = len(reply.split()) * int(body.get("n") or 1)
        message: dict[str, Any] = {"role": "assistant", "content": reply}
        finish = "stop"
        if body.get("tools"):
            fn = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_fake1",
                        "type": "function",
                        "function": {"name": fn, "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
            finish = "tool_calls"
        response: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                for i in range(int(body.get("n") or 1))
            ],
        }
        if self.include_usage:
            response["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        return web.json_response(response)

    async def _stream(
        self, request: web.Request, die_after: int | None = None
    ) -> web.StreamResponse:
        body = self.requests[-1]
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        words = (self.respond(body) if self.respond else self.reply).split(" ")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        sent = 0
        try:
            await response.write(chunk({"role": "assistant", "content": ""}))
            for i, word in enumerate(words):
                if die_after is not None and sent >= die_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if self.stream_delay_s:
                    await asyncio.sleep(self.stream_delay_s)
                await response.write(
                    chunk({"content": word + ("" if i == len(words) - 1 else " ")})
                )
                sent += 1
            if self.pause_before_finish_s:
                await asyncio.sleep(self.pause_before_finish_s)
            await response.write(chunk({}, "stop"))
            if self.include_usage and (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "prompt_tokens": 7,
                    "completion_tokens": len(words),
                    "total_tokens": 7 + len(words),
                }
                payload = {**base, "choices": [], "usage": usage}
                await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            self.completed_streams += 1
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled_streams += 1
            raise
        return response

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        failed = await self._take_failure(request, False)
        if failed is not None:
            return failed
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or 8
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i + 1) / dims] * dims}
            for i in range(len(inputs))
        ]
        tokens = sum(len(str(x).split()) for x in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
