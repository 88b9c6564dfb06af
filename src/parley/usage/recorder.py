"""Usage events are buffered and written in batches, off the request path.

No event is lost to a bad neighbour or a failed shutdown:
- the ledger keeps one event per request id (a replayed write changes nothing);
- a batch the database refuses for its data is split until the row at fault is found, and
  that row alone is set aside in `usage-quarantine.jsonl` (with a log line);
- a batch that fails for the database's sake (unreachable, locked) stays buffered;
- what the last flush at shutdown could not write is spilled to `usage-spill/` under the
  data directory, and written by the next start.
A hard crash loses at most one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.engine import Database
from parley.usage import repository

log = structlog.get_logger("parley.usage")

MAX_BATCH = 1000
MAX_BUFFER = 200_000
SPILL_DIR = "usage-spill"
QUARANTINE_FILE = "usage-quarantine.jsonl"

Row = dict[str, Any]


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
    messages: int = 0
    overage_messages: int = 0


_FIELDS = tuple(f.name for f in fields(Usage))


def _database_down(exc: BaseException) -> bool:
    """Whether writing failed for the database's sake rather than for the rows' content."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, OSError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _encode(rows: Sequence[Row]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def _decode(line: bytes) -> Row:
    row: Row = orjson.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


class UsageRecorder:
    def __init__(self, db: Database, *, flush_s: float = 1.0, data_dir: Path | None = None):
        self.db = db
        self.flush_s = flush_s
        self.data_dir = data_dir
        self._buffer: list[Row] = []
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
        return sum(r["messages"] for r in rows), sum(int(r["cost_micros"]) for r in rows)

    async def period_totals(
        self, session: AsyncSession, org_id: str, start: datetime, end: datetime
    ) -> tuple[int, int]:
        """Messages and cost of an organisation's period: the ledger's and the buffer's, read
        as one (no flush moves events from one to the other meanwhile, which would count
        them twice or not at all)."""
        async with self._lock:
            messages, cost = await repository.period_totals(session, org_id, start, end)
            pending_messages, pending_cost = self.pending_totals(org_id, start)
        return messages + pending_messages, cost + pending_cost

    async def flush(self) -> int:
        async with self._lock:
            written = 0
            while self._buffer:
                batch = self._buffer[:MAX_BATCH]
                try:
                    written += await self._write(batch)
                except Exception:
                    log.exception("usage.flush_failed", pending=len(self._buffer))
                    return written  # kept in the buffer for the next flush
                del self._buffer[: len(batch)]
            return written

    async def _write(self, rows: Sequence[Row]) -> int:
        """Write `rows`; a batch refused for its data is split until the rows at fault are
        found and quarantined. Raises only when the database itself failed."""
        try:
            async with self.db.session() as session:
                await repository.insert_events(session, rows)
        except Exception as exc:
            if _database_down(exc):
                raise
            if len(rows) == 1:
                self._quarantine(rows[0], exc)
                return 0
            middle = len(rows) // 2
            return await self._write(rows[:middle]) + await self._write(rows[middle:])
        return len(rows)

    def _quarantine(self, row: Row, exc: Exception) -> None:
        log.error(
            "usage.event_quarantined",
            usage_id=row.get("id"),
            org_id=row.get("org_id"),
            error=type(exc).__name__,
            file=QUARANTINE_FILE if self.data_dir else None,
        )
        if self.data_dir is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / QUARANTINE_FILE).open("ab") as out:
            out.write(_encode([row]))

    # --- the shutdown spill --------------------------------------------------------------

    def _spill(self) -> None:
        """Keep what could not be written for the next start (written whole, then renamed,
        so a half-written file is never replayed)."""
        if not self._buffer:
            return
        if self.data_dir is None:
            log.error("usage.lost_at_shutdown", events=len(self._buffer))
            return
        folder = self.data_dir / SPILL_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{self._buffer[0]['id']}-{os.getpid()}.jsonl"
        temporary = folder / f".{name}.tmp"
        with temporary.open("wb") as out:
            out.write(_encode(self._buffer))
            out.flush()
            os.fsync(out.fileno())
        temporary.rename(folder / name)
        log.error("usage.spilled_for_next_start", events=len(self._buffer), file=name)
        self._buffer.clear()

    async def replay_spilled(self) -> int:
        """Write what an earlier shutdown spilled; a file goes once its events are in."""
        if self.data_dir is None:
            return 0
        folder = self.data_dir / SPILL_DIR
        if not folder.is_dir():
            return 0
        replayed = 0
        for path in sorted(folder.glob("*.jsonl")):
            try:
                rows = [_decode(line) for line in path.read_bytes().splitlines() if line.strip()]
                async with self._lock:
                    for start in range(0, len(rows), MAX_BATCH):
                        replayed += await self._write(rows[start : start + MAX_BATCH])
            except FileNotFoundError:
                continue  # another process of this deployment replayed it
            except Exception:
                log.exception("usage.spill_replay_failed", file=path.name)
                return replayed  # kept for the next start
            path.unlink(missing_ok=True)
            log.info("usage.spill_replayed", events=len(rows), file=path.name)
        return replayed

    # --- lifecycle -----------------------------------------------------------------------

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
        try:
            await self.flush()
        finally:
            self._spill()
