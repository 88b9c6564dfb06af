"""Redis going away on the scale-out stack: message and spending quotas fail closed (a 503,
never N processes each allowing the plan), rate limits go on per process, and once Redis is
back the counters that missed settlements meanwhile are rebuilt from the usage ledger.

Each test runs its own redis-server (never the shared one), stopped and started on command,
and reaches it directly or through a TCP relay that can cut the connection while the server
keeps its data (a network partition).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from parley.backends.limits import ResilientLimiter
from parley.config import Settings
from tests.support import FakeClock, asgi_client, assert_error, create_key, register, running
from tests.usage.conftest import EMBED, SLOW, chat, free_port, settle, summary, usage_events

pytestmark = [
    pytest.mark.parametrize("stack", ["scaleout"]),
    pytest.mark.parametrize("plans_override", [{"free": {"messages": 8}}]),
]


class RedisServer:
    """A redis-server of the test's own, on a fixed port, that can be stopped and restarted
    (it keeps nothing on disk: a restart starts empty)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        redis = Redis.from_url(self.url)
        try:
            for _ in range(500):
                with contextlib.suppress(RedisError, OSError):
                    if await redis.ping():
                        return
                await asyncio.sleep(0.01)
            raise RuntimeError("redis-server did not start")
        finally:
            await redis.aclose()

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            await self.process.wait()
            self.process = None


class Partition:
    """A TCP relay in front of a Redis: `cut()` drops every connection and refuses new ones
    while the server (and its data) stays; `heal()` lets traffic through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def heal(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        await self.server.wait_closed()
        self.server = None

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links -= {writer, up_writer}


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port())
    await server.start()
    yield server
    await server.stop()


def quota_refused(response: httpx.Response) -> None:
    error = assert_error(response, 503, "api_error", "quota_backend_unavailable")
    assert "retry" in error["message"]
    assert int(response.headers["retry-after"]) >= 1


async def embed(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/v1/embeddings",
        json={"model": EMBED, "input": "tides"},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_restarted_redis_fails_closed_then_counts_from_the_ledger(
    make_settings: Callable[..., Settings],
    usage_yaml: Path,
    own_redis: RedisServer,
    clock: FakeClock,
) -> None:
    settings = make_settings(config=usage_yaml, usage_flush_s=3600, redis_url=own_redis.url)
    async with running(settings, clock) as app, asgi_client(app) as client:
        limiter = app.state.ctx.backends.limiter
        assert isinstance(limiter, ResilientLimiter)
        limiter.retry_after_s = 0.0  # probe Redis on every call
        account = await register(client)
        secret = str((await create_key(client, account))["key"])
        assert [(await chat(client, secret)).status_code for _ in range(2)] == [200] * 2

        # A call in flight when Redis goes: it is served, and its settlement cannot reach it.
        running_call = asyncio.create_task(chat(client, secret, SLOW))
        await asyncio.sleep(0.3)
        await own_redis.stop()

        for _ in range(3):  # no process may count the plan's messages on its own
            quota_refused(await chat(client, secret))
        # Calls that are no messages keep going on per-process rate limits.
        assert (await embed(client, secret)).status_code == 200
        assert (await running_call).status_code == 200
        await settle(app)

        await own_redis.start()  # empty: every counter is gone
        back = [(await chat(client, secret)).status_code for _ in range(6)]
        assert back == [200] * 5 + [429], "rebuilt from the ledger: 2 + 1 of 8 were used"
        await settle(app)
        assert (await summary(client, account))["messages"]["used"] == 8
        events = await usage_events(app, account.org_id)
    assert sum(e.messages for e in events) == 8
    assert sorted({e.status for e in events}) == ["ok"]


async def test_settlements_missed_in_a_partition_are_rebuilt_once_redis_answers(
    make_settings: Callable[..., Settings],
    usage_yaml: Path,
    own_redis: RedisServer,
    clock: FakeClock,
) -> None:
    partition = Partition(own_redis.port)
    await partition.heal()
    settings = make_settings(config=usage_yaml, usage_flush_s=3600, redis_url=partition.url)
    async with running(settings, clock) as app, asgi_client(app) as client:
        limiter = app.state.ctx.backends.limiter
        assert isinstance(limiter, ResilientLimiter)
        limiter.retry_after_s = 0.0
        account = await register(client)
        secret = str((await create_key(client, account))["key"])
        assert [(await chat(client, secret)).status_code for _ in range(2)] == [200] * 2

        # Two calls in flight when the network goes: one is served, the other is abandoned
        # by its client before any answer (its message must be given back).
        served = asyncio.create_task(chat(client, secret, SLOW))
        abandoned = asyncio.create_task(chat(client, secret, SLOW))
        await asyncio.sleep(0.3)
        await partition.cut()
        abandoned.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await abandoned
        quota_refused(await chat(client, secret))
        assert (await served).status_code == 200
        await settle(app)

        # Redis kept its counters (3 + 1 taken, the give-back missed): answering again, they
        # are rebuilt from the ledger, which holds 3 messages.
        await partition.heal()
        back = [(await chat(client, secret)).status_code for _ in range(6)]
        assert back == [200] * 5 + [429]
        await settle(app)
        events = await usage_events(app, account.org_id)
        assert (await summary(client, account))["messages"]["used"] == 8
    assert sum(e.messages for e in events) == 8
    assert sorted((e.status, e.messages) for e in events if e.status != "ok") == [("cancelled", 0)]
