"""Coalesce concurrent identical lookups: when a cache entry expires under load, one caller
fetches it and the others wait for that result instead of all hitting the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # waiters re-raise it; the creator has it already
            raise
        else:
            future.set_result(value)
            return value
        finally:
            self._inflight.pop(key, None)
