"""Chooses the backends from the settings: Redis when configured, in-process otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

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
    listening: Redis | None = None  # pub/sub: a connection per subscription, its own pool

    @property
    def kind(self) -> str:
        return "redis" if self.redis is not None else "memory"

    async def close(self) -> None:
        await self.counters.close()
        await self.pubsub.close()
        if self.control is not self.pubsub:
            await self.control.close()
        await self.limiter.close()
        for client in (self.redis, self.listening):
            if client is not None:
                await client.aclose()


def build_backends(settings: Settings, db: Database) -> Backends:
    if settings.redis_url:
        # Commands wait for a pooled connection when all are busy, rather than fail: a burst
        # of requests must not read as Redis being down (quotas then refuse to count).
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_timeout_s,
            socket_connect_timeout=2,
            socket_timeout=2,
        )
        redis = Redis.from_pool(pool)
        listening = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        ns = settings.redis_namespace
        pubsub = RedisPubSub(listening, prefix=f"{ns}:ps:")
        return Backends(
            RedisCounters(redis, prefix=f"{ns}:c:"),
            pubsub,
            pubsub,
            ResilientLimiter(RedisLimiter(redis, prefix=f"{ns}:l:")),
            redis,
            listening,
        )
    # On SQLite, ids commit in order (one writer at a time), so polling "after the last id"
    # misses nothing. PostgreSQL without Redis stays one process (scale-out needs Redis).
    memory = MemoryPubSub()
    control = DatabasePubSub(db, poll_s=settings.broadcast_poll_s) if db.is_sqlite else memory
    return Backends(MemoryCounters(), memory, control, MemoryLimiter())
