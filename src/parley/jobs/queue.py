"""Enqueueing: a job row added to the caller's session, committed with its cause (outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.jobs.models import Job
from parley.kit.clock import utcnow
from parley.kit.ids import new_id


def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    max_attempts: int = 8,
) -> Job:
    job = Job(
        id=new_id("job"),
        kind=kind,
        payload=payload,
        run_at=run_at or utcnow(),
        max_attempts=max_attempts,
    )
    session.add(job)
    session.info.setdefault("enqueued_jobs", []).append(job.id)
    return job
