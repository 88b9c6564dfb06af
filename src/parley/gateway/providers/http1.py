"""A lean keep-alive HTTP/1.1 client: asyncio protocols, the httptools parser, a pool per origin.

Providers only POST a body and read back JSON or a stream of lines, and per request a full
client library costs more than the rest of the gateway's hot path (see bench/http_clients.py).
This does just that: one write per request, one wake-up per response, connections kept
alive and reused. A connection is reused only after a complete response that allows it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

IDLE_S = 30.0  # an idle connection older than this may have been closed by the server
HIGH_WATER = 256 * 1024  # unread streamed bytes before we stop reading the socket


class HttpError(Exception):
    """A transport failure: the upstream could not be reached or broke the response off."""


class CannotConnect(HttpError):
    pass


class Disconnected(HttpError):
    """The connection closed before a response arrived."""


class BrokenBody(HttpError):
    """The connection closed, or the response turned malformed, in the middle of the body."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self.begin()

    def begin(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.error: HttpError | None = None
        self._until_eof = False
        self._paused = False

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def wait(self) -> None:
        """Until something more arrives (or the response fails)."""
        if self.error is not None:
            raise self.error
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def take_body(self) -> bytes:
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return body

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: HttpError) -> None:
        self.error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            self._fail(BrokenBody(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete or self.error is not None:
            return
        if self.headers_done and self._until_eof:
            self.complete = True  # a body delimited by the end of the connection
            self._wake()
        elif self.headers_done:
            self._fail(BrokenBody("the connection closed in the middle of the response"))
        else:
            self._fail(Disconnected("the connection closed before a response"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        # Asked now: the parser forgets it once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()
        self._until_eof = (
            "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower()
        )
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()


class Response:
    """A response whose status and headers have arrived; its body is read with `read()` or
    `lines()`. `release()` returns the connection to the pool, or closes it when unfinished."""

    __slots__ = ("_conn", "_origin", "_pool", "headers", "read_timeout_s", "status")

    def __init__(self, pool: Pool, origin: _Origin, conn: _Connection, read_timeout_s: float):
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self.read_timeout_s = read_timeout_s

    async def read(self) -> bytes:
        conn = self._conn
        while not conn.complete:
            await conn.wait()
        return conn.take_body()

    async def lines(self) -> AsyncIterator[bytes]:
        """The body split after each b"\\n"; each wait for more bytes is bounded."""
        conn = self._conn
        pending = b""
        while True:
            if conn.chunks:
                pending += conn.take_body()
                *whole, pending = pending.split(b"\n")
                for line in whole:
                    yield line + b"\n"
            elif conn.complete:
                if pending:
                    yield pending
                return
            else:
                async with asyncio.timeout(self.read_timeout_s):
                    await conn.wait()

    def release(self) -> None:
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed:
            self._pool.put_back(self._origin, conn)
        else:
            conn.close()


class _Origin:
    """Where requests go (scheme, host, port) and the idle connections to it."""

    __slots__ = ("host", "host_header", "idle", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        self.tls = scheme == "https"
        self.host = host
        default = 443 if self.tls else 80
        self.port = port or default
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        self.host_header = name if self.port == default else f"{name}:{self.port}"
        self.idle: list[_Connection] = []


class Pool:
    """Keep-alive connections per origin, for one provider. No limit on their number, as
    the router and the plan limits bound what is in flight."""

    def __init__(self, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break")
        self.headers = headers
        self._head_tail = _header_block(headers)
        self._origins: dict[tuple[str, str, int | None], _Origin] = {}
        self._targets: dict[str, tuple[_Origin, str]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    def _target(self, url: str) -> tuple[_Origin, str]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) URL: {url}")
            key = (parts.scheme, parts.hostname, parts.port)
            origin = self._origins.get(key)
            if origin is None:
                origin = self._origins[key] = _Origin(*key)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            target = (origin, path)
            if len(self._targets) < 1024:  # providers use a handful of URLs
                self._targets[url] = target
        return target

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        if origin.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            _, conn = await loop.create_connection(
                _Connection,
                origin.host,
                origin.port,
                ssl=self._ssl if origin.tls else None,
            )
        except OSError as exc:
            raise CannotConnect(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def _checkout(self, origin: _Origin) -> _Connection | None:
        idle = origin.idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            conn.close()
        return None

    def put_back(self, origin: _Origin, conn: _Connection) -> None:
        if self.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        origin.idle.append(conn)

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        read_timeout_s: float,
    ) -> Response:
        """Send the request and wait for the response's status and headers. The caller
        bounds this wait (and the connect) and must `release()` the response."""
        origin, path = self._target(url)
        conn = self._checkout(origin) or await self._connect(origin)
        conn.begin()
        tail = self._head_tail if not headers else _header_block({**self.headers, **headers})
        conn.send(
            b"".join(
                (
                    f"POST {path} HTTP/1.1\r\nhost: {origin.host_header}\r\n".encode("latin-1"),
                    tail,
                    b"content-length: %d\r\n\r\n" % len(body),
                    body,
                )
            )
        )
        try:
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.close()
            raise
        return Response(self, origin, conn, read_timeout_s)

    def close(self) -> None:
        self.closed = True
        for origin in self._origins.values():
            for conn in origin.idle:
                conn.close()
            origin.idle.clear()


def _header_block(headers: dict[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
