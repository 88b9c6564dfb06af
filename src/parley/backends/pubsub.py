"""Publish/subscribe fan-out: in-process for one machine, Redis across processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("parley.pubsub")


class PubSub(Protocol):
    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(
        self, channel: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Messages published on `channel` after the subscription is in place."""
        ...

    async def close(self) -> None: ...


class MemoryPubSub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in self._subscribers.get(channel, ()):
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribers.setdefault(channel, set()).add(queue)

        async def messages() -> AsyncIterator[bytes]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            subs = self._subscribers.get(channel)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subscribers[channel]

    async def close(self) -> None:
        self._subscribers.clear()


class RedisPubSub:
    def __init__(self, redis: Redis, prefix: str = "parley:ps:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def publish(self, channel: str, message: bytes) -> None:
        await self._redis.publish(self._prefix + channel, message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._prefix + channel)

        async def messages() -> AsyncIterator[bytes]:
            while True:
                msg = await pubsub.get_message(timeout=None)
                if msg is not None and msg["type"] == "message":
                    yield msg["data"]

        try:
            yield messages()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        return None


class ChannelListener:
    """Runs `handle` for every message on one channel, for the life of the process.

    Reconnects after a backend failure; `on_gap` runs then, since messages published
    meanwhile were missed (caches drop what they hold, for instance).
    """

    def __init__(
        self,
        pubsub: PubSub,
        channel: str,
        handle: Callable[[bytes], object],
        *,
        on_gap: Callable[[], None] | None = None,
        name: str,
    ) -> None:
        self.pubsub = pubsub
        self.channel = channel
        self.handle = handle
        self.on_gap = on_gap
        self.name = name
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Subscribe; returns once the subscription is in place (or after `wait_s`)."""
        self._task = asyncio.create_task(self._run(), name=self.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=wait_s)

    async def _run(self) -> None:
        while True:
            try:
                async with self.pubsub.subscribe(self.channel) as messages:
                    self._ready.set()
                    async for message in messages:
                        self.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("pubsub.listener_reconnecting", listener=self.name)
                if self.on_gap is not None:
                    self.on_gap()
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
