"""Limits on what an upstream can make us hold (header count and bytes, one streamed line)
and on what we send (no header or URL can end a line early and smuggle another in)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.gateway.providers._http1 import BadResponse, KiB, Limits, Pool, TooLarge
from tests.gateway.http1.conftest import Run
from tests.gateway.http1.servers import Peer, RawServer, answering, fixed


async def status_and_body(pool: Pool, url: str) -> tuple[int, bytes]:
    response = await pool.post(url, b"{}", read_timeout_s=5)
    try:
        return response.status, await response.read()
    finally:
        response.release()


def with_headers(*headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(headers) + b"content-length: 2\r\n\r\nok"


def test_header_count_is_limited(run: Run[Any]) -> None:
    many = [b"x-h%d: 1\r\n" % i for i in range(20)]

    async def scenario() -> None:
        async with RawServer(answering(lambda _r: with_headers(*many))) as server:
            assert await status_and_body(Pool({}, limits=Limits(max_headers=21)), server.url()) == (
                200,
                b"ok",
            )
            with pytest.raises(BadResponse, match="more than 20 response headers"):
                await status_and_body(Pool({}, limits=Limits(max_headers=20)), server.url())

    run(scenario())


def test_header_bytes_are_limited(run: Run[Any]) -> None:
    value = b"v" * 1000

    async def scenario() -> None:
        # 10 headers of about 1 KiB: fine under 16 KiB, refused under 8 KiB.
        headers = [b"x-h%d: %s\r\n" % (i, value) for i in range(10)]
        async with RawServer(answering(lambda _r: with_headers(*headers))) as server:
            roomy = Pool({}, limits=Limits(max_header_bytes=16 * KiB))
            assert await status_and_body(roomy, server.url()) == (200, b"ok")
            tight = Pool({}, limits=Limits(max_header_bytes=8 * KiB))
            with pytest.raises(BadResponse, match="headers are over the 8 KiB limit"):
                await status_and_body(tight, server.url())

    run(scenario())


def test_a_header_line_that_never_ends_is_cut_off(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def endless(peer: Peer) -> None:
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\nx-endless: ")
            for _ in range(1000):  # up to 64 MiB unless the client hangs up
                await peer.send(b"a" * 65536)

        async with RawServer(endless) as server:
            pool = Pool({})  # the default: 64 KiB of headers
            with pytest.raises(BadResponse, match="over the 64 KiB limit"):
                await status_and_body(pool, server.url())
            pool.close()

    run(scenario())


def test_a_streamed_line_is_limited(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def long_lines(peer: Peer) -> None:
            while await peer.request() is not None:
                await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                # A line of exactly 1 KiB (with its \n), arriving in 1-byte chunks...
                for byte in b"x" * 1023 + b"\n":
                    await peer.send(b"1\r\n%c\r\n" % byte)
                # ...then one of 1 KiB + 1 that never ends.
                await peer.send(b"401\r\n" + b"y" * 1025 + b"\r\n")
                await asyncio.sleep(30)

        async with RawServer(long_lines) as server:
            pool = Pool({}, limits=Limits(max_line_bytes=KiB))
            response = await pool.post(server.url(), b"{}", read_timeout_s=30)
            lines = response.lines()
            assert await anext(lines) == b"x" * 1023 + b"\n"
            with pytest.raises(TooLarge, match="a line of the streamed response is over"):
                await anext(lines)
            response.release()
            pool.close()

    run(scenario())


def test_request_headers_cannot_smuggle_lines(run: Run[Any]) -> None:
    for bad in ({"x-api-key": "k\r\nx-evil: 1"}, {"x-api-key": "k\nx"}, {"x-api-key": "k\rx"}):
        with pytest.raises(ValueError, match="line break"):
            Pool(bad)
    with pytest.raises(ValueError, match="not a valid HTTP token"):
        Pool({"x-evil: 1\r\nx-api-key": "k"})

    async def scenario() -> None:
        async with RawServer(fixed(200, b"{}")) as server:
            pool = Pool({"x-api-key": "k"})
            # Headers given per request are checked too, names and values.
            for bad in ({"anthropic-beta": "a\r\nx-evil: 1"}, {"bad name": "v"}):
                with pytest.raises(ValueError, match=r"line break|token"):
                    await pool.post(server.url(), b"{}", headers=bad, read_timeout_s=5)
            with pytest.raises(ValueError, match="spaces or control characters"):
                await pool.post(server.url("/v1/a b"), b"{}", read_timeout_s=5)
            # Nothing reached the server; good requests still go out, with their headers.
            assert server.requests == []
            response = await pool.post(
                server.url(), b"{}", headers={"anthropic-beta": "tools"}, read_timeout_s=5
            )
            response.release()
            assert b"x-api-key: k\r\nanthropic-beta: tools\r\n" in server.requests[0]
            pool.close()

    run(scenario())
