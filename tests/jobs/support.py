"""Helpers for the job tests: reading a job back, and handlers that record their calls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from parley.db.engine import Database
from parley.jobs.models import Job
from parley.jobs.queue import enqueue


async def load(db: Database, job_id: str) -> Job | None:
    async with db.session() as session:
        return await session.get(Job, job_id)


async def must_load(db: Database, job_id: str) -> Job:
    job = await load(db, job_id)
    assert job is not None, f"job {job_id} does not exist"
    return job


async def add_job(
    db: Database,
    kind: str = "record",
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    max_attempts: int = 8,
) -> str:
    """Enqueue one job in its own committed unit of work."""
    async with db.session() as session:
        job = enqueue(session, kind, payload or {}, run_at=run_at, max_attempts=max_attempts)
        return job.id


@dataclass
class Recorder:
    """A handler that records each payload it is called with."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, payload: dict[str, Any]) -> None:
        self.calls.append(payload)
        self.called.set()


@dataclass
class Flaky:
    """A handler that raises `errors` in turn, then succeeds."""

    errors: list[BaseException]
    calls: int = 0

    async def __call__(self, payload: dict[str, Any]) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
