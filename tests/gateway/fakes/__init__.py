"""Fake upstream providers: real HTTP servers on loopback that speak the vendors' wire formats.

`FakeServer` holds what every fake shares: start/stop on 127.0.0.1 with a free port, a log of
the requests received, and failures on command. A subclass adds its routes in `routes()` and
calls `await self.intercept(request)` first in each handler; streaming handlers write their
events through `self.write_events(...)`, which honours `die_mid_stream_next()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Json = dict[str, Any]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class _Failure:
    status: int
    retry_after: float | str | None


@dataclass
class _Controls:
    failures: deque[_Failure] = field(default_factory=deque)
    hang_s: float | None = None
    reset: bool = False
    die_after: int | None = None
    end_after: int | None = None
    stall: tuple[int, float] | None = None


class FakeServer:
    """Base of the fakes: `await start()`, `url`, `requests`, failure controls, `await stop()`."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._controls = _Controls()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port = 0

    # -- lifecycle

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> FakeServer:
        self._stopping = asyncio.Event()
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- controls

    def fail_next(
        self, status: int, times: int = 1, retry_after: float | str | None = None
    ) -> None:
        """The next `times` requests answer `status` (with Retry-After when given)."""
        for _ in range(times):
            self._controls.failures.append(_Failure(status, retry_after))

    def hang_next(self, seconds: float) -> None:
        """The next request waits `seconds` before answering (or until the server stops)."""
        self._controls.hang_s = seconds

    def reset_next(self) -> None:
        """The next request has its TCP connection reset without an answer."""
        self._controls.reset = True

    def die_mid_stream_next(self, after_events: int = 3) -> None:
        """The next answer sends `after_events` events (or half its body) then drops the
        connection."""
        self._controls.die_after = after_events

    def end_stream_early_next(self, after_events: int = 3) -> None:
        """The next stream sends `after_events` events, then ends cleanly (no final event)."""
        self._controls.end_after = after_events

    def stall_mid_stream_next(self, seconds: float, after_events: int = 2) -> None:
        """The next stream sends `after_events` events, then goes quiet for `seconds`."""
        self._controls.stall = (after_events, seconds)

    def reset_controls(self) -> None:
        self._controls = _Controls()

    # -- for handlers

    def error_body(self, status: int, message: str) -> Json:
        return {"error": {"message": message}}

    async def record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
        )
        self.requests.append(recorded)
        return recorded

    async def intercept(self, request: web.Request) -> web.StreamResponse | None:
        """Apply a pending reset, hang or failure; None when the request should be served."""
        controls = self._controls
        if controls.reset:
            controls.reset = False
            self.abort(request, rst=True)
            return web.Response()
        if controls.hang_s is not None:
            seconds, controls.hang_s = controls.hang_s, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
        if controls.failures:
            failure = controls.failures.popleft()
            headers = {}
            if failure.retry_after is not None:
                headers["retry-after"] = str(failure.retry_after)
            return web.json_response(
                self.error_body(failure.status, f"injected failure {failure.status}"),
                status=failure.status,
                headers=headers,
                dumps=lambda o: orjson.dumps(o).decode(),
            )
        return None

    def take_die_after(self) -> int | None:
        value, self._controls.die_after = self._controls.die_after, None
        return value

    @staticmethod
    def abort(request: web.Request, *, rst: bool = False) -> None:
        transport = request.transport
        if transport is None:
            return
        if rst:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def json(self, body: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    async def json_or_die(self, request: web.Request, body: Any) -> web.StreamResponse:
        """A JSON answer, or half of one and a dropped connection after die_mid_stream_next()."""
        if self.take_die_after() is None:
            return self.json(body)
        raw = orjson.dumps(body)
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.content_length = len(raw)
        with contextlib.suppress(ConnectionResetError):  # the client may be gone already
            await response.prepare(request)
            await response.write(raw[: len(raw) // 2])
        self.abort(request)
        return response

    async def write_events(
        self,
        request: web.Request,
        events: list[bytes],
        *,
        delay_s: float = 0.0,
    ) -> web.StreamResponse:
        """Stream pre-encoded SSE events, honouring the die/end-early/stall controls."""
        controls = self._controls
        die_after = self.take_die_after()
        end_after, controls.end_after = controls.end_after, None
        stall, controls.stall = controls.stall, None
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        try:
            await response.prepare(request)
            for number, event in enumerate(events):
                if die_after is not None and number >= die_after:
                    self.abort(request)
                    return response
                if end_after is not None and number >= end_after:
                    break
                if stall is not None and number == stall[0]:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), stall[1])
                await response.write(event)
                if delay_s:
                    await asyncio.sleep(delay_s)
            await response.write_eof()
        except ConnectionResetError:  # the client hung up (e.g. it timed out): nothing to do
            pass
        return response


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def approx_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return max(1, (len(text) + 3) // 4)
