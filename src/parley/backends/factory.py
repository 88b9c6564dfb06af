"""Chooses the backends from the settings: Redis when configured, in-process otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

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

    @property
    def kind(self) -> str:
        return "redis" if self.redis is not None else "memory"

    async def close(self) -> None:
        await self.counters.close()
        await self.pubsub.close()
        await self.limiter.close()
        if self.redis is not None:
            await self.redis.aclose()


def build_backends(settings: Settings) -> Backends:
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        ns = settings.redis_namespace
        return Backends(
            RedisCounters(redis, prefix=f"{ns}:c:"),
            RedisPubSub(redis, prefix=f"{ns}:ps:"),
            ResilientLimiter(RedisLimiter(redis, prefix=f"{ns}:l:")),
            redis,
        )
    return Backends(MemoryCounters(), MemoryPubSub(), MemoryLimiter())
