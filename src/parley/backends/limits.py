"""Atomic admission against several windowed counters at once: all fit, or none is taken.

In-process for the embedded default; Redis (one Lua call, one round trip) when configured,
so several Parley processes share exact limits. When Redis is unreachable the resilient
wrapper keeps rate limits (requests and tokens per minute) per process, but refuses to
admit against the period's quotas: N processes counting apart would allow N times the
plan. It returns to Redis as soon as Redis answers again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("parley.limits")

MISSING = -2  # a counter that must exist (rebuilt from the ledger) does not


class BackendUnavailable(Exception):
    """The shared counters cannot be reached, so quotas cannot be checked exactly."""


# Named tuples: several are built for every inference request, and they cost the least.
class Counter(NamedTuple):
    key: str
    cost: int
    limit: int | None  # None: counted, never refused
    ttl_s: int
    must_exist: bool = False  # quota counters are seeded from the ledger first


class Admission(NamedTuple):
    allowed: bool
    refused: int | None  # index of the counter that refused (or was missing)
    missing: bool
    values: tuple[int, ...]  # after the increment when allowed, else as found
    resets_in_s: tuple[float, ...]


class Adjustment(NamedTuple):
    key: str
    delta: int
    ttl_s: int
    # A missing windowed counter starts at a positive delta; a missing quota counter is left
    # alone, to be rebuilt whole from the ledger (a delta alone would pass for the total).
    create: bool = True


class Limiter(Protocol):
    async def admit(self, counters: list[Counter]) -> Admission: ...

    async def adjust(self, key: str, delta: int, ttl_s: int) -> None: ...

    async def adjust_many(self, adjustments: Sequence[Adjustment]) -> None:
        """Several adjustments in one round trip, in order."""
        ...

    async def seed(self, key: str, value: int, ttl_s: int) -> None:
        """Set a missing counter (rebuilt from the ledger); an existing one is kept."""
        ...

    async def forget(self, keys: Sequence[str]) -> None:
        """Drop counters, so that the next admission rebuilds them from the ledger."""
        ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """Exact within one process: nothing awaits between the checks and the increments."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, float]] = {}

    def _get(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    async def admit(self, counters: list[Counter]) -> Admission:
        now = time.monotonic()
        found = [self._get(c.key, now) for c in counters]
        values: list[int] = []
        resets: list[float] = []
        missing = None
        for i, (c, entry) in enumerate(zip(counters, found, strict=True)):
            if entry is None:
                values.append(0)
                resets.append(float(c.ttl_s))
                if c.must_exist and missing is None:
                    missing = i
            else:
                values.append(entry[0])
                resets.append(entry[1] - now)
        if missing is not None:
            return Admission(False, missing, True, tuple(values), tuple(resets))
        for i, c in enumerate(counters):
            if c.limit is not None and values[i] + c.cost > c.limit:
                return Admission(False, i, False, tuple(values), tuple(resets))
        after = []
        for c, entry in zip(counters, found, strict=True):
            value, expires = (entry[0] + c.cost, entry[1]) if entry else (c.cost, now + c.ttl_s)
            self._data[c.key] = (value, expires)
            after.append(value)
        if len(self._data) > 200_000:
            self._sweep(now)
        return Admission(True, None, False, tuple(after), tuple(resets))

    async def adjust(self, key: str, delta: int, ttl_s: int) -> None:
        self._adjust(key, delta, ttl_s)

    async def adjust_many(self, adjustments: Sequence[Adjustment]) -> None:
        for key, delta, ttl_s, create in adjustments:
            self._adjust(key, delta, ttl_s, create)

    def _adjust(self, key: str, delta: int, ttl_s: int, create: bool = True) -> None:
        now = time.monotonic()
        entry = self._get(key, now)
        if entry is None:
            if delta > 0 and create:
                self._data[key] = (delta, now + ttl_s)
            return
        self._data[key] = (max(0, entry[0] + delta), entry[1])

    async def seed(self, key: str, value: int, ttl_s: int) -> None:
        if self._get(key, time.monotonic()) is None:
            self._data[key] = (value, time.monotonic() + ttl_s)

    async def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._data.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]

    async def close(self) -> None:
        self._data.clear()


_ADMIT = """
local n = #KEYS
local values, ttls = {}, {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  local base = (i - 1) * 4
  if not v then
    if ARGV[base + 4] == '1' then
      return {-2, i, values, ttls}
    end
    v = 0
    ttl = tonumber(ARGV[base + 3])
  end
  values[i] = tonumber(v)
  ttls[i] = ttl
end
for i = 1, n do
  local base = (i - 1) * 4
  local limit = tonumber(ARGV[base + 2])  -- nil: no limit (a limit may be negative)
  if limit and values[i] + tonumber(ARGV[base + 1]) > limit then
    return {-1, i, values, ttls}
  end
end
for i = 1, n do
  local base = (i - 1) * 4
  local v = redis.call('INCRBY', KEYS[i], ARGV[base + 1])
  if redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[base + 3])
  end
  values[i] = v
end
return {0, 0, values, ttls}
"""

_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if tonumber(ARGV[1]) > 0 and ARGV[3] == '1' then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
  return 0
end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return v
"""


class RedisLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._adjust = redis.register_script(_ADJUST)

    async def admit(self, counters: list[Counter]) -> Admission:
        args: list[int | str] = []
        for c in counters:
            args += [c.cost, "" if c.limit is None else c.limit, c.ttl_s * 1000, int(c.must_exist)]
        status, index, values, ttls = await self._admit(
            keys=[self.prefix + c.key for c in counters], args=args
        )
        found = [int(v) for v in values] + [0] * (len(counters) - len(values))
        resets = [int(t) / 1000 for t in ttls] + [float(c.ttl_s) for c in counters[len(ttls) :]]
        if status == 0:
            return Admission(True, None, False, tuple(found), tuple(resets))
        return Admission(False, int(index) - 1, status == MISSING, tuple(found), tuple(resets))

    async def adjust(self, key: str, delta: int, ttl_s: int) -> None:
        await self._adjust(keys=[self.prefix + key], args=[delta, ttl_s * 1000, 1])

    async def adjust_many(self, adjustments: Sequence[Adjustment]) -> None:
        if not adjustments:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, delta, ttl_s, create in adjustments:
                await self._adjust(
                    keys=[self.prefix + key], args=[delta, ttl_s * 1000, int(create)], client=pipe
                )
            await pipe.execute()

    async def seed(self, key: str, value: int, ttl_s: int) -> None:
        await self.redis.set(self.prefix + key, value, px=ttl_s * 1000, nx=True)

    async def forget(self, keys: Sequence[str]) -> None:
        if keys:
            await self.redis.delete(*(self.prefix + key for key in keys))

    async def close(self) -> None:
        return None


class ResilientLimiter:
    """Redis first. While Redis is unreachable, rate-limit counters are kept per process
    (with a warning), and anything that needs a quota counter raises BackendUnavailable:
    the caller refuses the request rather than let each process count the quota apart."""

    def __init__(self, primary: RedisLimiter, *, retry_after_s: float = 1.0) -> None:
        self.primary = primary
        self.fallback = MemoryLimiter()
        self.retry_after_s = retry_after_s
        self._down_since: float | None = None

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def _use_primary(self) -> bool:
        return self._down_since is None or time.monotonic() - self._down_since >= self.retry_after_s

    def _failed(self, exc: Exception) -> None:
        if self._down_since is None:
            log.warning("limits.redis_unreachable", error=type(exc).__name__)
        self._down_since = time.monotonic()

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning("limits.redis_back_sharing_limits_again")
            self._down_since = None

    async def admit(self, counters: list[Counter]) -> Admission:
        if self._use_primary():
            try:
                result = await self.primary.admit(counters)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self._recovered()
                return result
        if any(c.must_exist for c in counters):
            raise BackendUnavailable("Redis is unreachable")
        return await self.fallback.admit(counters)

    async def adjust(self, key: str, delta: int, ttl_s: int) -> None:
        await self.adjust_many([Adjustment(key, delta, ttl_s)])

    async def adjust_many(self, adjustments: Sequence[Adjustment]) -> None:
        """On failure the rate counters are corrected here; the quota corrections cannot be
        made, which BackendUnavailable tells the caller (so it can have them rebuilt)."""
        if self._use_primary():
            try:
                await self.primary.adjust_many(adjustments)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self._recovered()
                return
        await self.fallback.adjust_many([a for a in adjustments if a.create])
        if any(not a.create for a in adjustments):
            raise BackendUnavailable("Redis is unreachable")

    async def _primary(self, call: Callable[[], Awaitable[None]]) -> None:
        if not self._use_primary():
            raise BackendUnavailable("Redis is unreachable")
        try:
            await call()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            raise BackendUnavailable("Redis is unreachable") from exc
        self._recovered()

    async def seed(self, key: str, value: int, ttl_s: int) -> None:
        await self._primary(lambda: self.primary.seed(key, value, ttl_s))

    async def forget(self, keys: Sequence[str]) -> None:
        await self._primary(lambda: self.primary.forget(keys))

    async def close(self) -> None:
        await self.fallback.close()
