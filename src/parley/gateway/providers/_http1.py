"""A lean keep-alive HTTP/1.1 client: asyncio protocols, the httptools parser, a pool per origin.

Providers only POST a body and read back JSON or a stream of lines, and per request a full
client library costs more than the rest of the gateway's hot path (see bench/http_clients.py).
This does just that: one write per request, one wake-up per response, connections kept
alive and reused. A connection is reused only after a complete response that allows it.

What it does:
- bodies delimited by content-length, chunked encoding or the end of the connection, read
  whole (`read()`) or line by line (`lines()`), up to `Limits.max_body_bytes`;
- limits on the response head (header count and bytes), on one line of a streamed body,
  and on the connections per origin (callers wait for a free one within the connect timeout);
- a connect timeout of its own (TCP, proxy tunnel, TLS, and the wait for a free connection);
- stale keep-alive connections: one idle longer than `Limits.idle_s` is not reused, one
  is looked at before reuse for a close the loop has not handled yet, and one the server
  resets before any response byte (it never read the request) is retried once on a new
  connection; a clean close after the request is not retried (the server may have acted);
- HTTP_PROXY / HTTPS_PROXY / NO_PROXY (read once, when the pool is made): absolute-form
  requests for http://, a CONNECT tunnel then TLS for https://; Basic proxy credentials
  from the proxy URL;
- TLS options: a CA bundle, verification off, a client certificate.

What it does not do: HTTP/2 or HTTP/3; methods other than POST; request bodies other than
whole bytes (no chunked uploads, no `Expect: 100-continue`); redirects (a 3xx is returned
as it is); compression (it never asks for it); cookies; proxies reached over TLS or SOCKS;
proxy authentication other than Basic; pipelining; a timer that sweeps idle connections
(they are closed when next found too old, or when the server closes them).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import re
import select
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import unquote, urlsplit

import httptools

KiB = 1024
MiB = 1024 * KiB
HIGH_WATER = 256 * KiB  # unread streamed bytes before we stop reading the socket
TUNNEL_HEAD_MAX = 64 * KiB  # a proxy's answer to CONNECT


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 64 * MiB
    max_line_bytes: int = 8 * MiB  # one line of a streamed body (an SSE line)
    max_header_bytes: int = 64 * KiB  # the whole response head
    max_headers: int = 128
    max_connections: int = 256  # per origin
    connect_timeout_s: float = 10.0
    # Shorter than common servers' keep-alive (uvicorn's is 5 s), so that a connection we
    # reuse has rarely been closed by the server in the meantime.
    idle_s: float = 4.0


@dataclass(frozen=True, slots=True)
class Tls:
    verify: bool = True
    ca_bundle: str | None = None  # PEM file: trusted instead of the system's CAs
    client_cert: str | None = None  # PEM file, with the key unless client_key is given
    client_key: str | None = None
    client_key_password: str | None = field(default=None, repr=False)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_bundle)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key, password=self._key_password)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _key_password(self) -> str:
        # Without this OpenSSL would prompt on the terminal for an encrypted key.
        if self.client_key_password is None:
            raise ValueError("the client key is encrypted: set its password")
        return self.client_key_password


class HttpError(Exception):
    """A transport failure: the upstream could not be reached or broke the response off."""


class CannotConnect(HttpError):
    """No connection: refused, unresolvable, TLS or proxy failure, or the connect timeout."""


class Disconnected(HttpError):
    """The connection closed before a response arrived."""


class BrokenBody(HttpError):
    """The connection closed, or the response turned malformed, in the middle of the body."""


class BadResponse(HttpError):
    """The response head is malformed or over the header limits."""


class TooLarge(HttpError):
    """The body, or one line of it, is over its limit. Asking again gets the same answer."""


class _Stop(Exception):
    """Raised in a parser callback to stop parsing with `error`."""

    def __init__(self, error: HttpError) -> None:
        self.error = error


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # Copied out of `limits`: the parser callbacks run for every response.
        self._max_body = limits.max_body_bytes
        self._max_body_digits = len(str(limits.max_body_bytes))
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reset = False  # lost with an error (a reset) rather than a clean close
        self.idle_since = 0.0
        self.poll: select.poll | None = None  # readiness of the socket, without the loop
        self._waiter: asyncio.Future[None] | None = None
        self.begin()
        self.expecting = False  # no request sent yet

    def begin(self) -> None:
        self.expecting = True
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.body_bytes = 0
        self.head_bytes = 0  # everything received before the end of the head
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.whole = False  # read() wants the body at once: no back-pressure, no wake-ups
        self.error: HttpError | None = None
        self._informational = False
        self._until_eof = False
        self._paused = False
        if self.closed:  # lost while it waited to be used
            self.error = Disconnected("the connection closed before a response")

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if not self.complete and self.error is None and self.expecting:
            self._fail(
                BrokenBody("the connection was closed in the middle of the response")
                if self.headers_done
                else Disconnected("the connection was closed before a response")
            )
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
        if self._paused:
            self.resume()
        return body

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

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
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.poll = select.poll()
            self.poll.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if not self.expecting:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        in_head = not self.headers_done
        if in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.complete:
                self.close()  # trailing bytes after a whole response
                return
            stop = exc.__context__
            if isinstance(stop, _Stop):
                self._abort(stop.error)
            elif self.headers_done:
                self._abort(BrokenBody(f"malformed HTTP response: {exc}"))
            else:
                self._abort(BadResponse(f"malformed HTTP response: {exc}"))
            return
        if in_head and not self.headers_done and self.head_bytes > self._max_head:
            # One header line that never ends would otherwise grow in the parser.
            self._abort(self._head_too_large())

    def _abort(self, error: HttpError) -> None:
        self._fail(error)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reset = exc is not None
        self.poll = None
        if self.complete or self.error is not None or not self.expecting:
            return
        if self.headers_done and self._until_eof:
            self.complete = True  # a body delimited by the end of the connection
            self.expecting = False
            self._wake()
        elif self.headers_done:
            self._fail(BrokenBody("the connection closed in the middle of the response"))
        else:
            self._fail(Disconnected("the connection closed before a response"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            raise _Stop(BrokenBody("data after the response"))  # closes the connection

    def on_header(self, name: bytes, value: bytes) -> None:
        # Limits are checked once the head is complete, and by data_received while it
        # arrives.
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self._informational = True  # e.g. 100 Continue: the real answer follows
            return
        self.status = status
        self.headers_done = True
        headers = self.headers
        if len(headers) > self._max_headers:
            raise _Stop(BadResponse(f"more than {self._max_headers} response headers"))
        # What arrived so far (the head, and maybe some body) fits: so do the headers.
        if self.head_bytes > self._max_head and _head_size(headers) > self._max_head:
            raise _Stop(self._head_too_large())
        # Asked now: the parser forgets it once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._until_eof = length is None and not chunked
        if (
            length is not None
            and len(length) >= self._max_body_digits  # else it cannot be over: skip parsing
            and not chunked
            and length.isdigit()
            and int(length) > self._max_body
        ):
            raise _Stop(self._body_too_large())
        self._wake()

    def on_body(self, body: bytes) -> None:
        size = len(body)
        self.body_bytes += size
        if self.body_bytes > self._max_body:
            raise _Stop(self._body_too_large())
        self.chunks.append(body)
        if self.whole:
            return
        self.buffered += size
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self.headers = {}
            return
        self.complete = True
        self.expecting = False
        self._wake()

    def _body_too_large(self) -> TooLarge:
        return TooLarge(f"the response body is over the {_size(self._max_body)} limit")

    def _head_too_large(self) -> BadResponse:
        return BadResponse(f"the response headers are over the {_size(self._max_head)} limit")


class Response:
    """A response whose status and headers have arrived; its body is read with `read()` or
    `lines()`. `release()` returns the connection to the pool, or closes it when unfinished."""

    __slots__ = ("_conn", "_origin", "_pool", "headers", "read_timeout_s", "status")

    def __init__(self, pool: Pool, origin: _Origin, conn: _Connection, read_timeout_s: float):
        self._pool = pool
        self._origin = origin
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers = conn.headers
        self.read_timeout_s = read_timeout_s

    async def read(self) -> bytes:
        """The whole body (the caller bounds the wait)."""
        conn = self._conn
        if conn is None:
            raise HttpError("the response was released")
        if not conn.complete:
            conn.whole = True
            conn.resume()
            while not conn.complete:
                await conn.wait()
        return conn.take_body()

    async def lines(self) -> AsyncIterator[bytes]:
        """The body split after each b"\\n"; each wait for more bytes is bounded."""
        conn = self._conn
        if conn is None:
            raise HttpError("the response was released")
        limit = self._pool.limits.max_line_bytes
        parts: list[bytes] = []  # the unfinished line, kept in pieces: no quadratic joins
        size = 0
        while True:
            if conn.chunks:
                data = conn.take_body()
                start = 0
                end = data.find(b"\n")
                while end >= 0:
                    line = data[start : end + 1]
                    if parts:
                        line = b"".join((*parts, line))
                        parts, size = [], 0
                    if len(line) > limit:
                        raise _line_too_long(limit)
                    yield line
                    start = end + 1
                    end = data.find(b"\n", start)
                if start < len(data):
                    parts.append(data[start:] if start else data)
                    size += len(data) - start
                    if size > limit:
                        raise _line_too_long(limit)
            elif conn.complete:
                if parts:
                    yield b"".join(parts)
                return
            else:
                async with asyncio.timeout(self.read_timeout_s):
                    await conn.wait()

    def release(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._pool.release(self._origin, conn)


def _line_too_long(limit: int) -> TooLarge:
    return TooLarge(f"a line of the streamed response is over the {_size(limit)} limit")


@dataclass(frozen=True, slots=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, from the URL's user:password


class _Origin:
    """Where requests go (scheme, host, port), how (directly or through a proxy), and the
    connections to it: idle ones, checked-out ones, and callers waiting for one."""

    __slots__ = (
        "authority",
        "busy",
        "host",
        "host_header",
        "idle",
        "opening",
        "port",
        "proxy",
        "tls",
        "waiters",
    )

    def __init__(self, scheme: str, host: str, port: int | None, proxy: _Proxy | None) -> None:
        self.tls = scheme == "https"
        self.host = host
        default = 443 if self.tls else 80
        self.port = port or default
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        self.authority = f"{name}:{self.port}"
        self.host_header = name if self.port == default else self.authority
        self.proxy = proxy
        self.idle: list[_Connection] = []
        self.busy: set[_Connection] = set()
        self.opening = 0
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()


class Pool:
    """Keep-alive connections per origin, for one provider, at most
    `limits.max_connections` to each."""

    def __init__(
        self,
        headers: dict[str, str],
        *,
        limits: Limits | None = None,
        tls: Tls | None = None,
        proxies: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`proxies` as urllib.request.getproxies_environment() gives them ({"https": url,
        "no": hosts}); by default read from the environment now."""
        check_headers(headers)
        self.headers = headers
        self.limits = limits or Limits()
        self._idle_s = self.limits.idle_s
        self._head_tail = _header_block(headers)
        self._tls = tls or Tls()
        # Made now when configured, so that a bad file fails at start; else on first use.
        self._ssl = self._tls.context() if tls is not None and tls != Tls() else None
        self._proxies = dict(
            urllib.request.getproxies_environment() if proxies is None else proxies
        )
        self._proxy_for = {
            scheme: _parse_proxy(scheme, url)
            for scheme in ("http", "https")
            if (url := self._proxies.get(scheme))
        }
        self._clock = clock
        self._origins: dict[tuple[str, str, int | None], _Origin] = {}
        self._targets: dict[str, tuple[_Origin, bytes]] = {}
        self.closed = False

    # Where a URL goes

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        """The origin and the request line with the headers every request carries."""
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # The URL itself is not quoted: a configured one may carry a secret.
                raise ValueError(f"not an http(s) URL (scheme {parts.scheme!r})")
            key = (parts.scheme, parts.hostname, parts.port)
            origin = self._origins.get(key)
            if origin is None:
                origin = self._origins[key] = _Origin(*key, self._route(*key))
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if _UNSAFE_TARGET.search(path) or _UNSAFE_TARGET.search(origin.host_header):
                raise ValueError("the URL has spaces or control characters")
            head = f"host: {origin.host_header}\r\n"
            if origin.proxy is not None and not origin.tls:
                path = f"http://{origin.host_header}{path}"  # absolute form, for the proxy
                if origin.proxy.authorization:
                    head += f"proxy-authorization: {origin.proxy.authorization}\r\n"
            line = f"POST {path} HTTP/1.1\r\n{head}".encode("latin-1")
            target = (origin, line)
            if len(self._targets) < 1024:  # providers use a handful of URLs
                self._targets[url] = target
        return target

    def _route(self, scheme: str, host: str, port: int | None) -> _Proxy | None:
        proxy = self._proxy_for.get(scheme)
        if proxy is None:
            return None
        name = host if port is None else f"{host}:{port}"
        if _proxy_bypass(name, self._proxies):
            return None
        return proxy

    # Connections

    def _checkout(self, origin: _Origin) -> _Connection | None:
        idle = origin.idle
        now = self._clock()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be stale
            transport = conn.transport
            poll = conn.poll
            if (
                now - conn.idle_since < self._idle_s
                and not conn.closed
                and transport is not None
                and not transport.is_closing()
                # Something to read on an idle connection is the server's close (or bytes
                # nobody asked for) that the loop has not handled yet: like urllib3 and
                # httpcore, look before reusing it.
                and not (poll is not None and poll.poll(0))
            ):
                origin.busy.add(conn)
                return conn
            conn.close()
        return None

    async def _acquire(self, origin: _Origin, *, fresh: bool = False) -> _Connection:
        """An idle connection, one handed over by a caller done with it, or a new one
        (`fresh`: a new one, in the slot the caller already holds)."""
        limits = self.limits
        waiting = False
        try:
            async with asyncio.timeout(limits.connect_timeout_s):
                while not fresh and len(origin.busy) + origin.opening >= limits.max_connections:
                    waiting = True
                    handed = await self._wait_for_connection(origin)
                    if handed is not None:
                        return handed
                    conn = self._checkout(origin)
                    if conn is not None:
                        return conn
                waiting = False
                return await self._open(origin)
        except TimeoutError as exc:
            if waiting:
                raise CannotConnect(
                    f"all {limits.max_connections} connections stayed busy for "
                    f"{limits.connect_timeout_s:g} s (max_connections)"
                ) from exc
            raise CannotConnect(f"could not connect within {limits.connect_timeout_s:g} s") from exc

    async def _wait_for_connection(self, origin: _Origin) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        origin.waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if not waiter.done():
                origin.waiters.remove(waiter)
            elif not waiter.cancelled() and waiter.exception() is None:
                # Woken, but leaving: what we were given goes to the next in line.
                handed = waiter.result()
                if handed is not None:
                    self._put_back(origin, handed)
                else:
                    self._slot_freed(origin)
            raise

    async def _open(self, origin: _Origin) -> _Connection:
        """A new connection, counted against the limit while it opens (the caller bounds it)."""
        origin.opening += 1
        try:
            conn = await self._connect(origin)
        except BaseException:
            origin.opening -= 1
            self._slot_freed(origin)
            raise
        origin.opening -= 1
        if self.closed:
            conn.close()
            raise CannotConnect("the client is closed")
        origin.busy.add(conn)
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = self._tls.context()
        return self._ssl

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        limits = self.limits
        proxy = origin.proxy
        try:
            if proxy is not None and origin.tls:
                return await self._tunnel(origin, proxy)
            host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
            _, conn = await loop.create_connection(
                lambda: _Connection(limits),
                host,
                port,
                ssl=self._context() if origin.tls else None,
            )
        except OSError as exc:  # refused, unresolvable, TLS (ssl.SSLError is an OSError)
            raise CannotConnect(_describe(exc, to_proxy=proxy is not None)) from exc
        return conn

    async def _tunnel(self, origin: _Origin, proxy: _Proxy) -> _Connection:
        """CONNECT through the proxy, then TLS with the origin over the tunnel."""
        loop = asyncio.get_running_loop()
        transport, opener = await loop.create_connection(_TunnelOpener, proxy.host, proxy.port)
        try:
            request = f"CONNECT {origin.authority} HTTP/1.1\r\nhost: {origin.authority}\r\n"
            if proxy.authorization:
                request += f"proxy-authorization: {proxy.authorization}\r\n"
            transport.write(f"{request}\r\n".encode("latin-1"))
            status, reason = await opener.answer
            if not 200 <= status < 300:
                raise CannotConnect(f"the proxy refused the tunnel: {status} {reason}")
            conn = _Connection(self.limits)
            try:
                tls_transport = await loop.start_tls(
                    transport, conn, self._context(), server_hostname=origin.host
                )
            except OSError as exc:  # the origin's certificate, through the tunnel
                raise CannotConnect(_describe(exc, through_proxy=True)) from exc
            if tls_transport is None:
                raise CannotConnect("the proxy closed the tunnel")
            conn.connection_made(tls_transport)
        except BaseException:
            opener.answer.cancel()  # a failure after this point has no one to hear it
            transport.close()
            raise
        return conn

    def release(self, origin: _Origin, conn: _Connection) -> None:
        """The caller is done with `conn`: reuse it when its response ended cleanly."""
        if conn.complete and conn.keep_alive and not conn.closed and not self.closed:
            if origin.waiters:
                self._put_back(origin, conn)
            else:
                origin.busy.discard(conn)
                conn.idle_since = self._clock()
                origin.idle.append(conn)
        else:
            self._discard(origin, conn)

    def _put_back(self, origin: _Origin, conn: _Connection) -> None:
        """A checked-out connection goes to the first caller waiting, or becomes idle."""
        waiters = origin.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)  # stays checked out (busy), by its new caller
                return
        origin.busy.discard(conn)
        conn.idle_since = self._clock()
        origin.idle.append(conn)

    def _discard(self, origin: _Origin, conn: _Connection) -> None:
        conn.close()
        origin.busy.discard(conn)
        self._slot_freed(origin)

    def _slot_freed(self, origin: _Origin) -> None:
        waiters = origin.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # Requests

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        read_timeout_s: float,
    ) -> Response:
        """Send the request and wait for the response's status and headers. The caller
        bounds this wait and must `release()` the response."""
        if self.closed:
            raise CannotConnect("the client is closed")
        origin, line = self._target(url)
        if headers:
            check_headers(headers)
            tail = _header_block({**self.headers, **headers})
        else:
            tail = self._head_tail
        request = b"".join((line, tail, b"content-length: %d\r\n\r\n" % len(body), body))
        conn = self._checkout(origin)
        reused = conn is not None
        if conn is None:
            conn = await self._acquire(origin)
        while True:
            conn.begin()
            conn.send(request)
            try:
                while not conn.headers_done:
                    await conn.wait()
            except Disconnected:
                if not (reused and conn.reset and not conn.head_bytes):
                    self._discard(origin, conn)
                    raise
                # Reset before any answer: the server had closed this idle connection
                # and never read the request. Once more on a new connection (in the same
                # slot), where that cannot happen. A clean close after the request is
                # not retried here: the server may have acted on it.
                conn.close()
                origin.busy.discard(conn)
                reused = False
                conn = await self._acquire(origin, fresh=True)
                continue
            except BaseException:
                self._discard(origin, conn)
                raise
            return Response(self, origin, conn, read_timeout_s)

    def close(self) -> None:
        """Close every connection, the idle and the checked-out ones."""
        self.closed = True
        for origin in self._origins.values():
            for conn in (*origin.idle, *origin.busy):
                conn.close()
            origin.idle.clear()
            origin.busy.clear()
            while origin.waiters:
                waiter = origin.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(CannotConnect("the client is closed"))


class _TunnelOpener(asyncio.Protocol):
    """Reads a proxy's answer to CONNECT: its status line and headers, nothing more."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > TUNNEL_HEAD_MAX:
                self.answer.set_exception(CannotConnect("the proxy's answer is too long"))
            return
        status_line = self._buffer[:end].split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or not parts[0].startswith("HTTP/1."):
            self.answer.set_exception(CannotConnect("the proxy answered CONNECT with garbage"))
            return
        self.answer.set_result((int(parts[1]), parts[2] if len(parts) > 2 else ""))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(CannotConnect("the proxy closed the connection"))


# NO_PROXY matching as urllib does it, on the proxies read once (typeshed lacks this one).
_proxy_bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse what could end a header line early or smuggle another one in (the value is
    never quoted: it may be a secret)."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if _UNSAFE_VALUE.search(value):
            raise ValueError(f"header {name!r} contains a line break or a control character")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} has characters outside Latin-1") from None


def _header_block(headers: Mapping[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


def _parse_proxy(scheme: str, url: str) -> _Proxy:
    variable = f"{scheme.upper()}_PROXY"
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        # Named without the URL itself, which may carry a password.
        raise ValueError(f"{variable}: only http:// proxies are supported, not {parts.scheme}://")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"{variable}: the proxy URL has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"{variable}: the proxy URL has no host")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return _Proxy(parts.hostname, port, authorization)


def _describe(exc: OSError, *, to_proxy: bool = False, through_proxy: bool = False) -> str:
    """Why a connection failed, without addresses: tenants may read this."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"certificate verify failed: {exc.verify_message}"
    elif isinstance(exc, ssl.SSLError):
        reason = f"TLS failed: {exc.reason or type(exc).__name__}"
    elif isinstance(exc, socket.gaierror):
        reason = "the host name does not resolve"
    elif exc.errno:
        reason = os.strerror(exc.errno)
    else:
        reason = "no address of the host accepted the connection"
    where = " to the proxy" if to_proxy else ""
    return f"could not connect{where}: {reason}" + (" (through the proxy)" if through_proxy else "")


def _head_size(headers: dict[str, str]) -> int:
    return sum(len(name) + len(value) + 4 for name, value in headers.items())


def _size(n: int) -> str:
    for unit, factor in (("MiB", MiB), ("KiB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"
