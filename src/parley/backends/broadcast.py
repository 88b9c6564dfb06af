"""Pub/sub through the database, for control-plane announcements between processes that share
only a SQLite file: `parley admin set-plan` next to a running server, or the processes of
`parley serve --workers N` (a plan changed, an API key revoked).

Publishing inserts a row (and delivers in this process at once); while anything here is
subscribed, one task reads the rows after the last one it saw, about once a second, in a
read-only transaction (no write lock). No request pays for it. It is for a few messages a
minute, not for streams: live conversation events stay on the in-process pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from sqlalchemy import delete, func, select

from parley.backends.models import Broadcast
from parley.backends.pubsub import MemoryPubSub
from parley.db.engine import Database
from parley.kit.clock import utcnow

log = structlog.get_logger("parley.pubsub")


class DatabasePubSub:
    def __init__(
        self, db: Database, *, poll_s: float = 1.0, keep: timedelta = timedelta(minutes=10)
    ) -> None:
        self.db = db
        self.poll_s = poll_s
        self.keep = keep  # a process that stops reading for longer misses what was pruned
        self.origin = os.urandom(16).hex()
        self._local = MemoryPubSub()
        self._subscriptions = 0
        self._last_id: int | None = None
        self._poller: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def publish(self, channel: str, message: bytes) -> None:
        await self._local.publish(channel, message)
        async with self.db.session() as session:
            session.add(Broadcast(channel=channel, message=message, origin=self.origin))
            await session.execute(
                delete(Broadcast).where(Broadcast.created_at < utcnow() - self.keep)
            )

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._local.subscribe(channel) as messages:
            await self._start_polling()
            self._subscriptions += 1
            try:
                yield messages
            finally:
                self._subscriptions -= 1
                if not self._subscriptions:
                    await self._stop_polling()

    async def _start_polling(self) -> None:
        async with self._starting:
            if self._poller is not None:
                return
            # What is already there was published before this subscription: not for it.
            async with self.db.read_session() as session:
                self._last_id = await session.scalar(select(func.max(Broadcast.id))) or 0
            self._poller = asyncio.create_task(self._poll_forever(), name="parley-broadcasts")

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception:
                # Nothing is lost: the rows wait for the next poll.
                log.warning("pubsub.broadcast_poll_failed", exc_info=True)

    async def poll(self) -> None:
        """Deliver here what other processes published since the last poll."""
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    select(Broadcast.id, Broadcast.channel, Broadcast.message, Broadcast.origin)
                    .where(Broadcast.id > (self._last_id or 0))
                    .order_by(Broadcast.id)
                    .limit(1000)
                )
            ).all()
        for row_id, channel, message, origin in rows:
            self._last_id = row_id
            if origin != self.origin:
                await self._local.publish(channel, message)

    async def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def close(self) -> None:
        await self._stop_polling()
        await self._local.close()
