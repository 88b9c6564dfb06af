"""Chooses the backends from the settings: Redis when configured, in-process otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from parley.backends.broadcast import DatabasePubSub
from parley.backends.counters import Counters, MemoryCounters, RedisCounters
from parley.backends.limits import Limiter, MemoryLimiter, RedisLimiter, ResilientLimiter
from parley.backends.pubsub import MemoryPubSub, PubSub, RedisPubSub
from parley.config import Settings
from parley.db.engine import Database


@dataclass
class Backends:
    counters: Counters
    pubsub: PubSub
    # Control-plane announcements (a plan changed, a key revoked) for every process that
    # shares the data: Redis pub/sub, or the database's broadcasts table on SQLite.
    control: PubSub
    limiter: Limiter
    redis: Redis | None = None

    @property
    def kind(self) -> str:
        return "redis" if self.redis is not None else "memory"

    async def close(self) -> None:
        await self.counters.close()
        await self.pubsub.close()
        if self.control is not self.pubsub:
            await self.control.close()
        await self.limiter.close()
        if self.redis is not None:
            await self.redis.aclose()


def build_backends(settings: Settings, db: Database) -> Backends:
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        ns = settings.redis_namespace
        pubsub = RedisPubSub(redis, prefix=f"{ns}:ps:")
        return Backends(
            RedisCounters(redis, prefix=f"{ns}:c:"),
            pubsub,
            pubsub,
            ResilientLimiter(RedisLimiter(redis, prefix=f"{ns}:l:")),
            redis,
        )
    # On SQLite, ids commit in order (one writer at a time), so polling "after the last id"
    # misses nothing. PostgreSQL without Redis stays one process (scale-out needs Redis).
    memory = MemoryPubSub()
    control = DatabasePubSub(db, poll_s=settings.broadcast_poll_s) if db.is_sqlite else memory
    return Backends(MemoryCounters(), memory, control, MemoryLimiter())
