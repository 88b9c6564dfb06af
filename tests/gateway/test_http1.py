"""The providers' HTTP/1.1 client against a raw socket server that answers with given bytes:
keep-alive reuse, the ways a body can be delimited, and a connection that breaks off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from parley.gateway.providers._http1 import BrokenBody, Disconnected, Pool

Answer = Callable[[bytes], bytes | None]  # request bytes -> response bytes (None: hang up)


class RawServer:
    """Answers each request on a connection with `answer(request)`; counts connections."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                response = self.answer(request)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
                if b"connection: close" in response.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/things?x=1"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        raw = RawServer(answer)
        servers.append(raw)
        return raw

    yield start
    for raw in servers:
        if raw.server is not None:
            raw.server.close()
            await raw.server.wait_closed()


async def started(raw: RawServer) -> RawServer:
    raw.server = await asyncio.start_server(raw._handle, "127.0.0.1", 0)
    return raw


def fixed(status: int, body: bytes, extra: bytes = b"") -> Answer:
    head = b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n" % (status, len(body))
    return lambda _request: head + extra + b"\r\n" + body


async def post(pool: Pool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await pool.post(url, body, read_timeout_s=5)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_connections_are_kept_alive_and_reused(
    serve: Callable[[Answer], RawServer],
) -> None:
    raw = await started(serve(fixed(200, b'{"ok": true}')))
    pool = Pool({"x-api-key": "k"})
    for _ in range(3):
        assert await post(pool, raw.url, b'{"a": 1}') == (200, b'{"ok": true}')
    pool.close()
    assert raw.connections == 1
    first = raw.requests[0]
    assert first.startswith(b"POST /v1/things?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"x-api-key: k\r\n" in first
    assert first.endswith(b'content-length: 8\r\n\r\n{"a": 1}')


async def test_connection_close_is_honoured(serve: Callable[[Answer], RawServer]) -> None:
    raw = await started(serve(fixed(200, b"{}", b"connection: close\r\n")))
    pool = Pool({})
    for _ in range(2):
        assert await post(pool, raw.url) == (200, b"{}")
    assert raw.connections == 2


async def test_chunked_and_until_close_bodies(serve: Callable[[Answer], RawServer]) -> None:
    chunked = await started(
        serve(
            lambda _r: (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        )
    )
    until_close = await started(
        serve(lambda _r: b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
    )
    pool = Pool({})
    assert await post(pool, chunked.url) == (200, b"hello world")
    assert await post(pool, until_close.url) == (200, b"all of it")


async def test_streamed_lines_arrive_whole(serve: Callable[[Answer], RawServer]) -> None:
    raw = await started(
        serve(
            lambda _r: (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"7\r\ndata: a\r\n9\r\n\n\ndata: b\r\n2\r\n\n\n\r\n0\r\n\r\n"
            )
        )
    )
    pool = Pool({})
    response = await pool.post(raw.url, b"{}", read_timeout_s=5)
    lines = [line async for line in response.lines()]
    response.release()
    assert lines == [b"data: a\n", b"\n", b"data: b\n", b"\n"]


async def test_a_dropped_connection_fails_before_or_during_the_body(
    serve: Callable[[Answer], RawServer],
) -> None:
    hangs_up = await started(serve(lambda _r: None))
    half = await started(
        serve(lambda _r: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{")
    )
    pool = Pool({})
    with pytest.raises(Disconnected):
        await post(pool, hangs_up.url)
    with pytest.raises(BrokenBody):
        await post(pool, half.url)
    # A broken connection is never reused.
    with pytest.raises(BrokenBody):
        await post(pool, half.url)
    assert half.connections == 2


def test_header_values_cannot_smuggle_lines() -> None:
    with pytest.raises(ValueError, match="line break"):
        Pool({"x-api-key": "k\r\nx-evil: 1"})
