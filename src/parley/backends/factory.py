"""Chooses the backends from the settings: Redis when configured, in-process otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

from parley.backends.counters import Counters, MemoryCounters, RedisCounters
from parley.backends.limits import Limiter, MemoryLimiter, RedisLimiter, ResilientLimiter
from parley.backends.pubsub import MemoryPubSub, PubSub, RedisPubSub
from parley.config import Settings


@dataclass
class Backends:
    counters: Counters
    pubsub: PubSub
    limiter: Limiter
    redis: Redis | None = None
    listening: Redis | None = None  # pub/sub: a connection per subscription, its own pool

    @property
    def kind(self) -> str:
        return "redis" if self.redis is not None else "memory"

    async def close(self) -> None:
        await self.counters.close()
        await self.pubsub.close()
        await self.limiter.close()
        for client in (self.redis, self.listening):
            if client is not None:
                await client.aclose()


def build_backends(settings: Settings) -> Backends:
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
        return Backends(
            RedisCounters(redis, prefix=f"{ns}:c:"),
            RedisPubSub(listening, prefix=f"{ns}:ps:"),
            ResilientLimiter(RedisLimiter(redis, prefix=f"{ns}:l:")),
            redis,
            listening,
        )
    return Backends(MemoryCounters(), MemoryPubSub(), MemoryLimiter())
