"""Several workers over one queue: every job runs exactly once.

On PostgreSQL claims skip rows another worker holds (`FOR UPDATE SKIP LOCKED`); on SQLite
writers are serialised (`BEGIN IMMEDIATE`). Each worker has its own engine, as separate
`parley worker` processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from parley.config import Settings
from parley.db.engine import Database
from parley.jobs import repository
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import enqueue
from parley.jobs.worker import Worker
from parley.kit.clock import utcnow

JOBS = 50


async def test_two_workers_run_each_job_exactly_once(database_url: str, settings: Settings) -> None:
    runs: list[tuple[str, int]] = []
    all_ran = asyncio.Event()

    def handler_for(tag: str) -> Any:
        async def handle(payload: dict[str, Any]) -> None:
            await asyncio.sleep(0.01)  # long enough for the workers' claims to interleave
            runs.append((tag, payload["n"]))
            if len(runs) >= JOBS:
                all_ran.set()

        return handle

    databases = [Database(database_url, sqlite_pragmas=settings.sqlite_pragmas) for _ in range(3)]
    producer, *worker_dbs = databases
    workers = [
        Worker(db, {"count": handler_for(tag)}, concurrency=4, poll_s=0.02)
        for tag, db in zip(("a", "b"), worker_dbs, strict=True)
    ]
    try:
        for worker in workers:
            worker.start()
        # Enqueued in small committed batches while both workers are already polling.
        for start in range(0, JOBS, 5):
            async with producer.session() as session:
                for n in range(start, start + 5):
                    enqueue(session, "count", {"n": n})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_ran.wait(), timeout=30)
        await asyncio.sleep(0.1)  # a duplicate run would show up now
    finally:
        for worker in workers:
            await asyncio.wait_for(worker.stop(), timeout=10)

    try:
        counts = Counter(n for _, n in runs)
        assert sorted(counts) == list(range(JOBS)), "some jobs never ran"
        assert [n for n, c in counts.items() if c > 1] == [], "some jobs ran twice"
        by_worker = Counter(tag for tag, _ in runs)
        assert set(by_worker) == {"a", "b"}, f"only one worker took jobs: {by_worker}"

        async with producer.session() as session:
            rows = (await session.execute(select(Job.status, Job.attempts))).all()
        assert len(rows) == JOBS
        assert {(status, attempts) for status, attempts in rows} == {(JobStatus.SUCCEEDED, 1)}
    finally:
        for db in databases:
            await db.dispose()


async def test_concurrent_claims_never_share_a_job(database_url: str, settings: Settings) -> None:
    """Many claims at once, from two engines: the claimed sets are disjoint and complete."""
    databases = [Database(database_url, sqlite_pragmas=settings.sqlite_pragmas) for _ in range(2)]
    try:
        async with databases[0].session() as session:
            ids = {enqueue(session, "count", {"n": n}).id for n in range(JOBS)}
        now = utcnow()

        async def claim(db: Database, worker_id: str) -> list[str]:
            async with db.session() as session:
                jobs = await repository.claim(
                    session, now=now, lease_until=now, worker_id=worker_id, limit=3
                )
                return [job.id for job in jobs]

        claims = await asyncio.gather(
            *(claim(databases[i % 2], f"w{i}") for i in range(20)), return_exceptions=True
        )
        errors = [c for c in claims if isinstance(c, BaseException)]
        assert errors == []
        claimed = [job_id for c in claims if isinstance(c, list) for job_id in c]
        assert len(claimed) == len(set(claimed)) == min(JOBS, 20 * 3)
        assert set(claimed) <= ids
    finally:
        for db in databases:
            await db.dispose()


# --- PostgreSQL only: a held claim is skipped, not waited for -----------------------------------


@pytest.fixture
async def pg_queue(pg_database: str) -> AsyncIterator[list[Database]]:
    """Two engines on the shared PostgreSQL test database, with an empty jobs table."""
    conn = await asyncpg.connect(pg_database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DELETE FROM jobs")
    finally:
        await conn.close()
    databases = [Database(pg_database) for _ in range(2)]
    try:
        yield databases
    finally:
        for db in databases:
            await db.dispose()


async def test_postgres_claim_skips_rows_locked_by_another_worker(
    pg_queue: list[Database],
) -> None:
    first, second = pg_queue
    async with first.session() as session:
        for n in range(5):
            enqueue(session, "count", {"n": n})
    now = utcnow()

    async with first.session() as holding:
        # Worker 1 has claimed one job and not yet committed: its row stays locked.
        [held] = await repository.claim(holding, now=now, lease_until=now, worker_id="one", limit=1)

        async def claim_rest() -> list[str]:
            async with second.session() as session:
                jobs = await repository.claim(
                    session, now=now, lease_until=now, worker_id="two", limit=10
                )
                return [job.id for job in jobs]

        # Worker 2 neither waits for the lock nor takes the held job.
        rest = await asyncio.wait_for(claim_rest(), timeout=5)
        assert len(rest) == 4
        assert held.id not in rest

    async with first.session() as session:
        rows = (await session.execute(select(Job.id, Job.locked_by))).all()
        owners: dict[str, str | None] = {row.id: row.locked_by for row in rows}
        total = await session.scalar(select(func.count()).select_from(Job))
    assert total == 5
    assert owners[held.id] == "one"
    assert {owners[i] for i in rest} == {"two"}
