from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.jobs.models import Job, JobStatus


async def claim(
    session: AsyncSession, *, now: datetime, lease_until: datetime, worker_id: str, limit: int
) -> Sequence[Job]:
    """Take due jobs (and ones whose lease ran out after a crash) for this worker.

    PostgreSQL skips rows other workers hold (`FOR UPDATE SKIP LOCKED`); SQLite serialises
    writers, so the same statement is safe there too.
    """
    due = (
        select(Job.id)
        .where(
            or_(
                (Job.status == JobStatus.QUEUED) & (Job.run_at <= now),
                (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
            )
        )
        .order_by(Job.run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()))
        .values(
            status=JobStatus.RUNNING,
            locked_until=lease_until,
            locked_by=worker_id,
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(stmt)).all()


async def get(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)
