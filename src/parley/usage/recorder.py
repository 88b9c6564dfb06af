"""Usage events are buffered and written in batches, off the request path.

A graceful shutdown flushes everything; a crash loses at most one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import structlog

from parley.db.engine import Database
from parley.usage import repository

log = structlog.get_logger("parley.usage")

MAX_BATCH = 1000
MAX_BUFFER = 200_000


@dataclass(slots=True)
class Usage:
    id: str
    org_id: str
    api_key_id: str | None
    user_id: str | None
    endpoint: str
    model: str
    provider: str | None
    deployment_model: str | None
    attempts: int
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_micros: int
    latency_ms: int
    ttft_ms: int | None
    status: str
    error_type: str | None
    created_at: datetime
    currency: str = "USD"
    counted: bool = False
    overage: bool = False


_FIELDS = tuple(f.name for f in fields(Usage))


class UsageRecorder:
    def __init__(self, db: Database, *, flush_s: float = 1.0) -> None:
        self.db = db
        self.flush_s = flush_s
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._full = asyncio.Event()

    def record(self, usage: Usage) -> None:
        if len(self._buffer) >= MAX_BUFFER:
            log.error("usage.buffer_full_dropping_oldest")
            del self._buffer[:MAX_BATCH]
        self._buffer.append({name: getattr(usage, name) for name in _FIELDS})
        if len(self._buffer) >= MAX_BATCH:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def pending_totals(self, org_id: str, start: datetime) -> tuple[int, int]:
        """Messages and cost of this org not yet written (the ledger does not have them yet)."""
        rows = [r for r in self._buffer if r["org_id"] == org_id and r["created_at"] >= start]
        return sum(1 for r in rows if r["counted"]), sum(int(r["cost_micros"]) for r in rows)

    async def flush(self) -> int:
        async with self._lock:
            written = 0
            while self._buffer:
                batch = self._buffer[:MAX_BATCH]
                try:
                    async with self.db.session() as session:
                        await repository.insert_events(session, batch)
                except Exception:
                    log.exception("usage.flush_failed", pending=len(self._buffer))
                    return written  # kept in the buffer for the next flush
                del self._buffer[: len(batch)]
                written += len(batch)
            return written

    def start(self) -> None:
        async def loop() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=self.flush_s)
                self._full.clear()
                await self.flush()

        self._task = asyncio.create_task(loop(), name="parley-usage-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
