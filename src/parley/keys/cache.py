"""API key → principal cache, dropped on revoke in every process, and last-used tracking."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime

import structlog

from parley.backends.pubsub import ChannelListener, PubSub
from parley.db.engine import Database
from parley.keys import repository
from parley.kit.clock import Clock, utcnow
from parley.orgs.roles import Scope

log = structlog.get_logger("parley.keys")

REVOKED_CHANNEL = "api_keys.revoked"


@dataclass(frozen=True, slots=True)
class CachedKey:
    key_id: str
    org_id: str
    scopes: frozenset[Scope]
    expires_at: datetime | None
    revoked: bool
    fetched_at: float
    rpm_limit: int | None = None
    tpm_limit: int | None = None


class KeyCache:
    """Lookups by key hash, kept `ttl_s` seconds; a revoke anywhere drops the entry at once."""

    def __init__(self, pubsub: PubSub, *, ttl_s: float, max_entries: int = 50_000) -> None:
        self.pubsub = pubsub
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, CachedKey] = {}
        # When each key was last dropped, and when everything was: a lookup that started
        # before then may have read the key before its revocation committed.
        self._dropped_at: dict[str, float] = {}
        self._cleared_at = float("-inf")
        self._listener = ChannelListener(
            pubsub,
            REVOKED_CHANNEL,
            lambda message: self.drop(message.decode()),
            on_gap=self.clear,  # we may have missed revocations
            name="parley-key-revocations",
        )

    def get(self, key_hash: str) -> CachedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or time.monotonic() - entry.fetched_at > self.ttl_s:
            return None
        return entry

    def put(self, key_hash: str, entry: CachedKey) -> None:
        """Keep `entry`, unless it was fetched before a drop of its key (it may be stale)."""
        dropped_at = max(self._cleared_at, self._dropped_at.get(key_hash, float("-inf")))
        if entry.fetched_at <= dropped_at:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = entry

    def drop(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)
        now = time.monotonic()
        self._dropped_at.pop(key_hash, None)
        self._dropped_at[key_hash] = now  # kept in time order
        # An entry fetched longer than ttl ago is never served, so older drops can go.
        while self._dropped_at:
            oldest, at = next(iter(self._dropped_at.items()))
            if now - at <= self.ttl_s:
                break
            del self._dropped_at[oldest]

    def clear(self) -> None:
        self._entries.clear()
        self._cleared_at = time.monotonic()

    async def announce_revoked(self, key_hash: str) -> None:
        self.drop(key_hash)
        try:
            await self.pubsub.publish(REVOKED_CHANNEL, key_hash.encode())
        except Exception:
            # Other processes still drop it when their entry's ttl runs out.
            log.warning("api_key.revoke_broadcast_failed")

    async def start(self) -> None:
        await self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()


class KeyUsageTracker:
    """Records `last_used_at` in batches off the request path: one write per flush, not per call."""

    def __init__(self, db: Database, *, flush_s: float, clock: Clock = utcnow) -> None:
        self.db = db
        self.flush_s = flush_s
        self.clock = clock
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def touch(self, key_id: str) -> None:
        self._pending.add(key_id)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, set()
        try:
            async with self.db.session() as session:
                await repository.touch(session, batch, self.clock())
        except Exception:
            log.warning("api_key.last_used_flush_failed", keys=len(batch))
            self._pending |= batch

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.flush_s)
                await self.flush()

        self._task = asyncio.create_task(loop(), name="parley-key-usage")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
