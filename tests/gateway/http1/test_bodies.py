"""Bodies from 0 B to 50 MiB, delimited by content-length, chunked encoding or the end of
the connection, read whole (`read()`) or line by line (`lines()`); exactly at the cap and
one byte over it."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from parley.gateway.providers._http1 import KiB, Limits, MiB, Pool, TooLarge
from tests.gateway.http1.conftest import Run
from tests.gateway.http1.servers import (
    LINE_BYTES,
    Handler,
    Peer,
    RawServer,
    body_blocks,
    body_of,
    chunked,
    digest_of,
)

FRAMINGS = ["content-length", "chunked", "until-close"]


def serving(size: int, framing: str, *, then_stall: bool = False) -> Handler:
    """Answers every request with `size` bytes of numbered lines, framed as asked;
    `then_stall` keeps the connection open without ending the body (or the connection)."""

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            if framing == "content-length":
                length = size + (1 if then_stall else 0)  # promises more than it sends
                await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % length)
                await peer.send(*body_blocks(size))
            elif framing == "chunked":
                await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                parts = list(chunked(body_blocks(size)))
                await peer.send(*(parts[:-1] if then_stall else parts))
            else:
                await peer.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                await peer.send(*body_blocks(size))
                if not then_stall:
                    return
            if then_stall:
                await asyncio.sleep(30)

    return handle


async def read_whole(pool: Pool, url: str) -> bytes:
    response = await pool.post(url, b"{}", read_timeout_s=30)
    try:
        async with asyncio.timeout(10):  # a stall fails the test instead of hanging it
            return await response.read()
    finally:
        response.release()


async def read_lines(pool: Pool, url: str) -> list[bytes]:
    response = await pool.post(url, b"{}", read_timeout_s=30)
    try:
        async with asyncio.timeout(10):
            return [line async for line in response.lines()]
    finally:
        response.release()


def assert_split_into_lines(lines: list[bytes], size: int) -> None:
    assert b"".join(lines) == body_of(size)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines[:-1])


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("size", [0, 1, 100, 256 * KiB - 1, 256 * KiB + 1, 3 * MiB + 7])
def test_bodies_of_any_size_are_read_whole_and_by_line(
    run: Run[Any], size: int, framing: str
) -> None:
    async def scenario() -> None:
        async with RawServer(serving(size, framing)) as server:
            pool = Pool({})
            assert await read_whole(pool, server.url()) == body_of(size)
            assert_split_into_lines(await read_lines(pool, server.url()), size)
            pool.close()
            # Kept alive across both, unless the body ends with the connection.
            assert server.connections == (2 if framing == "until-close" else 1)

    run(scenario())


@pytest.mark.parametrize("way", ["content-length, whole", "chunked, by line"])
def test_a_50_mib_body_arrives_intact(run: Run[Any], way: str) -> None:
    size = 50 * MiB

    async def scenario() -> None:
        framing = way.split(",")[0]
        async with RawServer(serving(size, framing)) as server:
            pool = Pool({})
            response = await pool.post(server.url(), b"{}", read_timeout_s=30)
            if framing == "content-length":
                body = await response.read()
                assert len(body) == size
                assert hashlib.sha256(body).hexdigest() == digest_of(size)
            else:
                sha, count = hashlib.sha256(), 0
                async for line in response.lines():
                    assert len(line) == LINE_BYTES
                    assert line.endswith(b"\n")
                    sha.update(line)
                    count += 1
                assert count == size // LINE_BYTES
                assert sha.hexdigest() == digest_of(size)
            response.release()
            pool.close()

    run(scenario())


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_body_exactly_at_the_cap_is_read(run: Run[Any], framing: str) -> None:
    async def scenario() -> None:
        async with RawServer(serving(MiB, framing)) as server:
            pool = Pool({}, limits=Limits(max_body_bytes=MiB))
            assert await read_whole(pool, server.url()) == body_of(MiB)
            assert_split_into_lines(await read_lines(pool, server.url()), MiB)
            pool.close()

    run(scenario())


@pytest.mark.parametrize("reader", ["whole", "by line"])
@pytest.mark.parametrize("framing", FRAMINGS)
def test_one_byte_over_the_cap_fails_at_once_and_the_connection_is_dropped(
    run: Run[Any], framing: str, reader: str
) -> None:
    async def scenario() -> None:
        # The server sends one byte over the cap and then neither ends the body nor closes:
        # the client must not wait for more (or for its timeout) to say no.
        async with RawServer(serving(MiB + 1, framing, then_stall=True)) as server:
            pool = Pool({}, limits=Limits(max_body_bytes=MiB))
            read = read_whole if reader == "whole" else read_lines
            with pytest.raises(TooLarge, match="over the 1 MiB limit"):
                await read(pool, server.url())
            with pytest.raises(TooLarge):
                await read(pool, server.url())
            pool.close()
            assert server.connections == 2  # never reused after an oversized body

    run(scenario())


def test_a_content_length_over_the_cap_is_refused_before_the_body(run: Run[Any]) -> None:
    async def scenario() -> None:
        async def promise_a_lot(peer: Peer) -> None:
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (64 * MiB + 1))
            await asyncio.sleep(30)  # and sends nothing

        async with RawServer(promise_a_lot) as server:
            pool = Pool({})  # the default cap: 64 MiB
            with pytest.raises(TooLarge, match="over the 64 MiB limit"):
                await pool.post(server.url(), b"{}", read_timeout_s=30)
            pool.close()

    run(scenario())
