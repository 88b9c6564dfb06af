"""Connections: keep-alive reuse (also after errors), slow and early-closing servers, stale
keep-alive connections, idle expiry, the pool size per host, the connect timeout and
closing the pool."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from parley.gateway.providers._http1 import (
    BrokenBody,
    CannotConnect,
    Disconnected,
    Limits,
    Pool,
)
from tests.gateway.http1.conftest import Run
from tests.gateway.http1.servers import ClosingServer, Peer, RawServer, answering, fixed

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def post(pool: Pool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await pool.post(url, body, read_timeout_s=5)
    try:
        return response.status, await response.read()
    finally:
        response.release()


def test_connections_are_kept_alive_and_reused(run: Run[Any]) -> None:
    async def scenario() -> None:
        async with RawServer(fixed(200, b'{"ok": true}')) as server:
            pool = Pool({"x-api-key": "k"})
            for _ in range(3):
                assert await post(pool, server.url(), b'{"a": 1}') == (200, b'{"ok": true}')
            pool.close()
            assert server.connections == 1
            first = server.requests[0]
            assert first.startswith(b"POST /v1/things?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
            assert b"x-api-key: k\r\n" in first
            assert first.endswith(b'content-length: 8\r\n\r\n{"a": 1}')

    run(scenario())


def test_connection_close_is_honoured(run: Run[Any]) -> None:
    async def scenario() -> None:
        async with RawServer(fixed(200, b"{}", b"connection: close\r\n")) as server:
            pool = Pool({})
            for _ in range(2):
                assert await post(pool, server.url()) == (200, b"{}")
            assert server.connections == 2

    run(scenario())


def test_error_statuses_keep_the_connection(run: Run[Any]) -> None:
    answers = iter([(500, b'{"error": "boom"}'), (404, b"no"), (429, b""), (200, b"{}")])

    def answer(_request: bytes) -> bytes:
        status, body = next(answers)
        return b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)

    async def scenario() -> None:
        async with RawServer(answering(answer)) as server:
            pool = Pool({})
            got = [await post(pool, server.url()) for _ in range(4)]
            assert got == [(500, b'{"error": "boom"}'), (404, b"no"), (429, b""), (200, b"{}")]
            assert server.connections == 1

    run(scenario())


def test_a_broken_abandoned_or_timed_out_response_is_never_reused(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def varied(peer: Peer) -> None:
            request = await peer.request()
            assert request is not None
            if b"stall" in request:  # half a body, then nothing
                await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf\n")
                await asyncio.sleep(30)
            elif b"cut" in request:  # half a body, then the connection closes
                await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf\n")
            else:
                await peer.send(OK)
                await answering(lambda _r: OK)(peer)

        async with RawServer(varied) as server:
            pool = Pool({})
            # Released before its body was read: closed, not reused.
            response = await pool.post(server.url(), b'"stall"', read_timeout_s=5)
            response.release()
            # A read that times out mid-body.
            response = await pool.post(server.url(), b'"stall"', read_timeout_s=0.05)
            with pytest.raises(TimeoutError):
                async for _line in response.lines():
                    pass
            response.release()
            # A body cut short.
            with pytest.raises(BrokenBody):
                await post(pool, server.url(), b'"cut"')
            # Each of those cost its connection; the next request gets a good one, and keeps it.
            assert await post(pool, server.url()) == (200, b"ok")
            assert await post(pool, server.url()) == (200, b"ok")
            assert server.connections == 4
            pool.close()

    run(scenario())


def test_a_slow_drip_is_read_whole_and_lines_arrive_as_they_come(run: Run[Any]) -> None:
    async def scenario() -> None:
        more = asyncio.Event()

        async def drip(peer: Peer) -> None:
            await peer.request()
            for byte in b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n":
                await peer.send(bytes([byte]))
                await asyncio.sleep(0)
            await peer.send(b"a\r\ndata: one\n\r\n", b"1\r\n\n\r\n")
            await more.wait()  # the client has the first event before the rest exists
            for byte in b"data: two\n\n":
                await peer.send(b"1\r\n%c\r\n" % byte)
                await asyncio.sleep(0.001)
            await peer.send(b"0\r\n\r\n")

        async with RawServer(drip) as server:
            pool = Pool({})
            response = await pool.post(server.url(), b"{}", read_timeout_s=5)
            lines = response.lines()
            assert [await anext(lines), await anext(lines)] == [b"data: one\n", b"\n"]
            more.set()
            assert [line async for line in lines] == [b"data: two\n", b"\n"]
            response.release()

            whole = asyncio.Event()
            whole.set()
            more = whole
            assert await post(pool, server.url()) == (200, b"data: one\n\ndata: two\n\n")
            pool.close()

    run(scenario())


def test_early_closes_fail_clearly(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def hang_up(peer: Peer) -> None:
            await peer.request()

        async def half_head(peer: Peer) -> None:
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-le")

        async def half_body(peer: Peer) -> None:
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")

        async def half_chunk(peer: Peer) -> None:
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nabc")

        pool = Pool({})
        for handler, error in [
            (hang_up, Disconnected),
            (half_head, Disconnected),
            (half_body, BrokenBody),
            (half_chunk, BrokenBody),
        ]:
            async with RawServer(handler) as server:
                with pytest.raises(error):
                    await post(pool, server.url())
        pool.close()

    run(scenario())


def test_informational_responses_are_skipped(run: Run[Any]) -> None:
    async def scenario() -> None:
        answer = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
        async with RawServer(answering(lambda _r: answer)) as server:
            pool = Pool({})
            assert await post(pool, server.url()) == (200, b"ok")
            assert await post(pool, server.url()) == (200, b"ok")
            assert server.connections == 1

    run(scenario())


def test_bytes_after_a_response_make_the_connection_unusable(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def chatty(peer: Peer) -> None:
            await peer.request()
            await peer.send(OK + b"HTTP/1.1 2")  # the start of an answer nobody asked for
            await answering(lambda _r: OK)(peer)

        async def chatty_later(peer: Peer) -> None:
            await peer.request()
            await peer.send(OK)
            await asyncio.sleep(0.05)
            await peer.send(b"HTTP/1.1 200 OK\r\n")  # while the connection is idle
            await answering(lambda _r: OK)(peer)

        for handler in (chatty, chatty_later):
            async with RawServer(handler) as server:
                pool = Pool({})
                assert await post(pool, server.url()) == (200, b"ok")
                await asyncio.sleep(0.1)
                assert await post(pool, server.url()) == (200, b"ok")
                assert server.connections == 2
                pool.close()

    run(scenario())


# --- stale keep-alive connections -----------------------------------------------------------


def test_an_idle_connection_the_server_closed_unnoticed_is_not_used(run: Run[Any]) -> None:
    server = ClosingServer()

    async def scenario() -> None:
        pool = Pool({})
        assert await post(pool, server.url()) == (200, b"ok")
        # The server closes the idle connection while this loop is busy elsewhere (it
        # blocks here on purpose), so the close is not handled before the next request.
        server.close_now.set()
        server.closed.wait(5)
        time.sleep(0.05)  # noqa: ASYNC251 - the point is a loop that cannot look
        assert await post(pool, server.url()) == (200, b"ok")
        pool.close()

    try:
        run(scenario())
    finally:
        server.stop()
    assert server.connections == 2
    assert server.requests == 2  # nothing was lost on the stale connection


def test_a_reused_connection_reset_before_any_answer_is_retried_on_a_new_one(
    run: Run[Any],
) -> None:
    async def scenario() -> None:
        async def resets_the_second(peer: Peer) -> None:
            await peer.request()
            await peer.send(OK)
            if peer.server.connections == 1:
                await peer.request()
                peer.reset()  # as a server does that dropped the idle connection
            else:
                await answering(lambda _r: OK)(peer)

        async with RawServer(resets_the_second) as server:
            pool = Pool({})
            assert await post(pool, server.url()) == (200, b"ok")
            assert await post(pool, server.url()) == (200, b"ok")  # no error surfaces
            assert server.connections == 2
            pool.close()

    run(scenario())


def test_what_may_have_reached_the_server_is_not_retried(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def closes_after_reading(peer: Peer) -> None:
            await peer.request()
            await peer.send(OK)
            await peer.request()  # read, then a clean close without an answer

        async def resets_at_once(peer: Peer) -> None:
            await peer.request()
            peer.reset()

        pool = Pool({})
        async with RawServer(closes_after_reading) as server:
            assert await post(pool, server.url()) == (200, b"ok")
            with pytest.raises(Disconnected):
                await post(pool, server.url())
            assert len(server.requests) == 2
        # A new connection that fails is not tried again either.
        async with RawServer(resets_at_once) as server:
            with pytest.raises(Disconnected):
                await post(pool, server.url())
            assert server.connections == 1
        pool.close()

    run(scenario())


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_connection_idle_nearly_as_long_as_servers_keep_it_is_not_reused(
    run: Run[Any],
) -> None:
    async def scenario() -> None:
        async with RawServer(answering(lambda _r: OK)) as server:
            clock = Monotonic()
            pool = Pool({}, clock=clock)  # default limits
            await post(pool, server.url())
            clock.now += 3.5
            await post(pool, server.url())
            assert server.connections == 1
            # uvicorn closes an idle connection after 5 s, and its close may cross our
            # request: the pool stops reusing one sooner.
            clock.now += 4.5
            await post(pool, server.url())
            assert server.connections == 2
            pool.close()

    run(scenario())


# --- pool size, connect timeout, close ------------------------------------------------------


def test_connections_per_host_are_limited_and_callers_take_turns(run: Run[Any]) -> None:
    async def scenario() -> None:
        go = asyncio.Event()

        async def slow(peer: Peer) -> None:
            while await peer.request() is not None:
                await go.wait()
                await peer.send(OK)

        async with RawServer(slow) as server:
            pool = Pool({}, limits=Limits(max_connections=2))
            calls = [asyncio.create_task(post(pool, server.url())) for _ in range(7)]
            await asyncio.sleep(0.1)
            assert server.open == 2
            go.set()
            assert await asyncio.gather(*calls) == [(200, b"ok")] * 7
            assert server.most_open == 2
            pool.close()

    run(scenario())


def test_waiting_for_a_free_connection_is_bounded_by_the_connect_timeout(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def never_answers(peer: Peer) -> None:
            await peer.request()
            await asyncio.sleep(30)

        async with RawServer(never_answers) as server:
            pool = Pool({}, limits=Limits(max_connections=1, connect_timeout_s=0.1))
            first = asyncio.create_task(pool.post(server.url(), b"{}", read_timeout_s=30))
            await asyncio.sleep(0.05)
            with pytest.raises(CannotConnect, match=r"all 1 connections stayed busy"):
                await pool.post(server.url(), b"{}", read_timeout_s=30)
            first.cancel()
            pool.close()

    run(scenario())


def test_the_connect_timeout_bounds_connecting_not_answering(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def silent(peer: Peer) -> None:
            await asyncio.sleep(30)  # accepts, then says nothing: no TLS handshake, no answer

        async with RawServer(silent) as server:
            pool = Pool({}, limits=Limits(connect_timeout_s=0.1))
            # A TLS handshake that never completes is part of connecting...
            with pytest.raises(CannotConnect, match=r"could not connect within 0\.1 s"):
                await pool.post(server.url().replace("http:", "https:"), b"{}", read_timeout_s=30)
            # ...a slow answer is not: only the caller's own timeout ends that wait.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await pool.post(server.url(), b"{}", read_timeout_s=30)
            pool.close()

    run(scenario())


def test_a_refused_connection_says_why_without_the_address(run: Run[Any]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once this closes

    async def scenario() -> None:
        with pytest.raises(CannotConnect, match="could not connect: Connection refused") as error:
            await post(Pool({}), f"http://127.0.0.1:{port}/v1/things")
        assert "127.0.0.1" not in str(error.value)  # tenants may read it

    run(scenario())


def test_close_closes_checked_out_connections_too(run: Run[Any]) -> None:
    async def scenario() -> None:
        hung_up = asyncio.Event()

        async def streams_forever(peer: Peer) -> None:
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await peer.send(b"a\r\ndata: one\n\r\n")
            if await peer.reader.read() == b"":  # until the client hangs up
                hung_up.set()

        async with RawServer(streams_forever) as server:
            pool = Pool({})
            response = await pool.post(server.url(), b"{}", read_timeout_s=30)
            lines = response.lines()
            assert await anext(lines) == b"data: one\n"
            reading = asyncio.create_task(anext(lines))
            await asyncio.sleep(0.01)
            pool.close()
            with pytest.raises(BrokenBody):
                await reading
            await asyncio.wait_for(hung_up.wait(), 5)
            with pytest.raises(CannotConnect, match="closed"):
                await pool.post(server.url(), b"{}", read_timeout_s=5)

    run(scenario())
