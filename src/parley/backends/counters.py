"""Windowed counters: in-process for the embedded default, Redis for several processes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Count:
    value: int
    resets_in_s: float

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.resets_in_s))


class Counters(Protocol):
    async def incr(self, key: str, window_s: int) -> Count:
        """Add one to `key`, starting a window of `window_s` seconds on the first hit."""
        ...

    async def get(self, key: str) -> Count: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryCounters:
    def __init__(self) -> None:
        self._data: dict[str, tuple[int, float]] = {}

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._data.get(key)
        if entry is None or entry[1] <= now:
            self._data.pop(key, None)
            return None
        return entry

    async def incr(self, key: str, window_s: int) -> Count:
        now = time.monotonic()
        entry = self._live(key, now)
        value, expires = (entry[0] + 1, entry[1]) if entry else (1, now + window_s)
        self._data[key] = (value, expires)
        if len(self._data) > 100_000:
            self._sweep(now)
        return Count(value, expires - now)

    async def get(self, key: str) -> Count:
        now = time.monotonic()
        entry = self._live(key, now)
        return Count(entry[0], entry[1] - now) if entry else Count(0, 0.0)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]

    async def close(self) -> None:
        self._data.clear()


_INCR = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {v, ttl}
"""


class RedisCounters:
    """One round trip per operation; the window lives in the key's TTL."""

    def __init__(self, redis: Redis, prefix: str = "parley:c:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._incr = redis.register_script(_INCR)

    async def incr(self, key: str, window_s: int) -> Count:
        value, ttl_ms = await self._incr(keys=[self._prefix + key], args=[window_s * 1000])
        return Count(int(value), int(ttl_ms) / 1000)

    async def get(self, key: str) -> Count:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._prefix + key)
            pipe.pttl(self._prefix + key)
            raw, ttl_ms = await pipe.execute()
        if raw is None:
            return Count(0, 0.0)
        return Count(int(raw), max(0, int(ttl_ms)) / 1000)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        return None
