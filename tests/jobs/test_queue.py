"""The outbox: a job is enqueued in the caller's unit of work, so it exists (and a local
worker is woken) only when that unit commits; a rollback discards it."""

from __future__ import annotations

import asyncio

import pytest

from parley.db.engine import Database
from parley.errors import InvalidRequest
from parley.jobs.models import JobStatus
from parley.jobs.queue import enqueue
from parley.jobs.worker import Worker
from tests.jobs.support import Recorder, add_job, load, must_load
from tests.support import FakeClock


async def enqueue_then_raise(
    db: Database, clock: FakeClock, error: BaseException, job_ids: list[str]
) -> None:
    """A unit of work that enqueues a job (written, not yet committed), then fails."""
    async with db.session() as session:
        job_ids.append(enqueue(session, "record", {"n": 1}, run_at=clock.now).id)
        await session.flush()  # the row is in the transaction
        raise error


async def test_enqueued_job_is_stored_queued(db: Database, clock: FakeClock) -> None:
    async with db.session() as session:
        job = enqueue(session, "record", {"n": 1}, run_at=clock.now, max_attempts=3)
        job_id = job.id
    assert job_id.startswith("job_")
    stored = await must_load(db, job_id)
    assert stored.kind == "record"
    assert stored.payload == {"n": 1}
    assert stored.status == JobStatus.QUEUED
    assert stored.attempts == 0
    assert stored.max_attempts == 3
    assert stored.run_at == clock.now
    assert stored.locked_by is None
    assert stored.locked_until is None
    assert stored.last_error is None
    assert stored.finished_at is None


async def test_committed_job_runs_once(db: Database, clock: FakeClock) -> None:
    record = Recorder()
    payload = {"n": 1, "text": "héllo", "nested": {"items": [1, 2, None], "ok": True}}
    job_id = await add_job(db, payload=payload, run_at=clock.now)
    worker = Worker(db, {"record": record}, clock=clock)

    assert await worker.run_once() == 1
    assert record.calls == [payload]
    job = await must_load(db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 1
    assert job.finished_at == clock.now
    assert job.locked_by is None
    assert job.locked_until is None
    assert job.last_error is None

    clock.advance(hours=1)
    assert await worker.run_once() == 0
    assert len(record.calls) == 1


async def test_default_run_at_is_now(db: Database) -> None:
    """Without run_at a job is due at once (for a worker on the real clock)."""
    record = Recorder()
    job_id = await add_job(db, payload={"x": 1})
    assert await Worker(db, {"record": record}).run_once() == 1
    assert record.calls == [{"x": 1}]
    assert (await must_load(db, job_id)).status == JobStatus.SUCCEEDED


async def test_rollback_discards_the_job(db: Database, clock: FakeClock) -> None:
    record = Recorder()
    woken: list[str] = []
    db.jobs_committed = lambda: woken.append("woken")
    worker = Worker(db, {"record": record}, clock=clock)

    job_ids: list[str] = []
    with pytest.raises(RuntimeError, match="the write failed"):
        await enqueue_then_raise(db, clock, RuntimeError("the write failed"), job_ids)

    assert await load(db, job_ids[0]) is None
    assert woken == []
    clock.advance(hours=1)
    assert await worker.run_once() == 0
    assert record.calls == []

    # The next unit of work starts clean: committing nothing wakes nobody...
    async with db.session():
        pass
    assert woken == []
    # ...and committing a job wakes the worker once.
    await add_job(db, payload={"n": 2}, run_at=clock.now)
    assert woken == ["woken"]
    assert await worker.run_once() == 1
    assert record.calls == [{"n": 2}]


async def test_domain_error_rolls_back_the_job(db: Database, clock: FakeClock) -> None:
    job_ids: list[str] = []
    with pytest.raises(InvalidRequest):
        await enqueue_then_raise(db, clock, InvalidRequest("bad input"), job_ids)
    assert await load(db, job_ids[0]) is None


async def test_error_that_keeps_changes_keeps_the_job(db: Database, clock: FakeClock) -> None:
    """An error marked keep_changes commits its unit of work, jobs included."""
    woken: list[str] = []
    db.jobs_committed = lambda: woken.append("woken")
    job_ids: list[str] = []
    error = InvalidRequest("failed, but recorded")
    error.keep_changes = True
    with pytest.raises(InvalidRequest):
        await enqueue_then_raise(db, clock, error, job_ids)
    assert (await must_load(db, job_ids[0])).status == JobStatus.QUEUED
    assert woken == ["woken"]


async def test_several_jobs_in_one_unit_wake_once(db: Database, clock: FakeClock) -> None:
    woken: list[str] = []
    db.jobs_committed = lambda: woken.append("woken")
    async with db.session() as session:
        for n in range(3):
            enqueue(session, "record", {"n": n}, run_at=clock.now)
    assert woken == ["woken"]
    record = Recorder()
    assert await Worker(db, {"record": record}, clock=clock, concurrency=10).run_once() == 3
    assert sorted(c["n"] for c in record.calls) == [0, 1, 2]


async def test_commit_wakes_a_sleeping_worker(db: Database, clock: FakeClock) -> None:
    """With a long poll interval, only the commit hook can make the job run promptly."""
    record = Recorder()
    worker = Worker(db, {"record": record}, poll_s=60, clock=clock)
    db.jobs_committed = worker.wake
    worker.start()
    try:
        await asyncio.sleep(0.1)  # the worker found nothing and sleeps
        await add_job(db, payload={"n": 1}, run_at=clock.now)
        await asyncio.wait_for(record.called.wait(), timeout=3)
        assert record.calls == [{"n": 1}]
    finally:
        await asyncio.wait_for(worker.stop(), timeout=5)
