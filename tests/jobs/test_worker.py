"""The worker: retries with exponential backoff, RetryLater, dead jobs, leases that run out
after a crash, batches, and a clean stop. Time moves by an injected clock, not by sleeping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.engine import Database
from parley.jobs import repository
from parley.jobs import worker as worker_module
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import RetryLater, Worker, backoff_s
from tests.jobs.support import Flaky, Recorder, add_job, must_load
from tests.support import FakeClock


@pytest.fixture
def longest_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the jitter deterministic: always the longest wait of each attempt."""
    monkeypatch.setattr(worker_module, "backoff_s", lambda attempt: float(2**attempt))


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_stays_within_exponential_bounds() -> None:
    for attempt in range(1, 16):
        ceiling = min(3600.0, 2.0**attempt)
        samples = [backoff_s(attempt) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples), (attempt, max(samples))
        # Full jitter: spread over the whole range, not stuck near either end.
        assert max(samples) > ceiling / 2
        assert min(samples) < ceiling / 2


def test_backoff_ceiling_doubles_then_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert [backoff_s(a) for a in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert backoff_s(11) == 2048.0
    assert backoff_s(12) == 3600.0  # capped at an hour
    assert backoff_s(3, base=3.0) == 27.0
    assert backoff_s(10, cap=60.0) == 60.0
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert backoff_s(5) == 0.0


def test_backoff_of_huge_attempt_counts_is_capped() -> None:
    for attempt in (1023, 1024, 5000, 10**6):
        assert 0 <= backoff_s(attempt) <= 3600.0


# --- retries -----------------------------------------------------------------------------------


async def test_failure_requeues_with_backoff(db: Database, clock: FakeClock) -> None:
    handler = Flaky([ValueError("upstream said no")])
    job_id = await add_job(db, "flaky", {"n": 1}, run_at=clock.now)
    worker = Worker(db, {"flaky": handler}, clock=clock)

    failed_at = clock.now
    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.QUEUED
    assert job.attempts == 1
    assert job.last_error is not None
    assert "ValueError" in job.last_error
    assert "upstream said no" in job.last_error
    assert "Traceback" not in job.last_error
    assert failed_at <= job.run_at <= failed_at + timedelta(seconds=2)  # attempt 1: up to 2 s
    assert job.locked_by is None
    assert job.locked_until is None
    assert job.finished_at is None

    clock.advance(seconds=2, milliseconds=1)
    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert job.last_error is None
    assert handler.calls == 2


async def test_backoff_grows_until_the_job_is_dead(
    db: Database, clock: FakeClock, longest_backoff: None
) -> None:
    handler = Flaky([RuntimeError(f"failure {i}") for i in range(10)])
    job_id = await add_job(db, "flaky", {}, run_at=clock.now, max_attempts=4)
    worker = Worker(db, {"flaky": handler}, clock=clock)

    for attempt, wait_s in ((1, 2), (2, 4), (3, 8)):
        assert await worker.run_once() == 1
        job = await must_load(db, job_id)
        assert job.status == JobStatus.QUEUED
        assert job.attempts == attempt
        assert job.run_at == clock.now + timedelta(seconds=wait_s)  # in the future
        assert job.last_error is not None
        assert f"failure {attempt - 1}" in job.last_error
        # Not due yet: nothing runs until its time.
        clock.advance(seconds=wait_s - 0.5)
        assert await worker.run_once() == 0
        clock.advance(seconds=0.5)

    assert await worker.run_once() == 1  # the fourth and last attempt
    job = await must_load(db, job_id)
    assert job.status == JobStatus.DEAD
    assert job.attempts == 4
    assert job.finished_at == clock.now
    assert job.last_error is not None
    assert "failure 3" in job.last_error
    assert job.locked_by is None

    clock.advance(days=1)
    assert await worker.run_once() == 0
    assert handler.calls == 4


async def test_single_attempt_job_dies_at_once(db: Database, clock: FakeClock) -> None:
    job_id = await add_job(db, "flaky", {}, run_at=clock.now, max_attempts=1)
    worker = Worker(db, {"flaky": Flaky([OSError("disk full")])}, clock=clock)
    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.DEAD
    assert job.last_error is not None
    assert "disk full" in job.last_error


async def test_retry_later_requeues_without_an_error_trace(
    db: Database, clock: FakeClock, longest_backoff: None
) -> None:
    handler = Flaky([RetryLater("the provider is busy"), RetryLater()])
    job_id = await add_job(db, "polite", {}, run_at=clock.now)
    worker = Worker(db, {"polite": handler}, clock=clock)

    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.QUEUED
    assert job.attempts == 1
    assert job.last_error == "the provider is busy"
    assert job.run_at == clock.now + timedelta(seconds=2)

    clock.advance(seconds=2)
    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.QUEUED
    assert job.last_error == "retry requested"
    assert job.run_at == clock.now + timedelta(seconds=4)

    clock.advance(seconds=4)
    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 3
    assert job.last_error is None


async def test_retry_later_still_counts_towards_max_attempts(
    db: Database, clock: FakeClock, longest_backoff: None
) -> None:
    handler = Flaky([RetryLater("not yet")] * 5)
    job_id = await add_job(db, "polite", {}, run_at=clock.now, max_attempts=2)
    worker = Worker(db, {"polite": handler}, clock=clock)
    assert await worker.run_once() == 1
    clock.advance(seconds=2)
    assert await worker.run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.DEAD
    assert job.last_error == "not yet"


async def test_unknown_kind_fails_and_retries(db: Database, clock: FakeClock) -> None:
    job_id = await add_job(db, "no-such-kind", {}, run_at=clock.now)
    assert await Worker(db, {}, clock=clock).run_once() == 1
    job = await must_load(db, job_id)
    assert job.status == JobStatus.QUEUED
    assert job.last_error is not None
    assert "no handler for job kind 'no-such-kind'" in job.last_error


# --- scheduling and batches --------------------------------------------------------------------


async def test_job_waits_for_its_run_at(db: Database, clock: FakeClock) -> None:
    record = Recorder()
    await add_job(db, payload={"later": True}, run_at=clock.now + timedelta(minutes=10))
    worker = Worker(db, {"record": record}, clock=clock)
    assert await worker.run_once() == 0
    clock.advance(minutes=9, seconds=59)
    assert await worker.run_once() == 0
    clock.advance(seconds=1)
    assert await worker.run_once() == 1
    assert record.calls == [{"later": True}]


async def test_batch_is_bounded_by_concurrency_and_runs_in_parallel(
    db: Database, clock: FakeClock
) -> None:
    running = 0
    peak = 0
    done: list[int] = []

    async def slow(payload: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(payload["n"])

    for n in range(7):
        await add_job(db, "slow", {"n": n}, run_at=clock.now)
    worker = Worker(db, {"slow": slow}, concurrency=3, clock=clock)
    assert await worker.run_once() == 3
    assert peak == 3
    assert await worker.run_once() == 3
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert sorted(done) == list(range(7))


async def test_oldest_due_job_is_claimed_first(db: Database, clock: FakeClock) -> None:
    record = Recorder()
    base = clock.now
    for n, minutes_ago in enumerate([1, 30, 5, 10]):
        await add_job(db, payload={"n": n}, run_at=base - timedelta(minutes=minutes_ago))
    worker = Worker(db, {"record": record}, concurrency=1, clock=clock)
    while await worker.run_once():
        pass
    assert [c["n"] for c in record.calls] == [1, 3, 2, 0]


# --- leases ------------------------------------------------------------------------------------


async def claim_and_crash(db: Database, now: datetime, lease_s: int = 300) -> Sequence[Job]:
    """What a worker that took jobs and then died leaves behind."""
    async with db.session() as session:
        return await repository.claim(
            session,
            now=now,
            lease_until=now + timedelta(seconds=lease_s),
            worker_id="crashed-host:1234:dead",
            limit=10,
        )


async def test_expired_lease_is_claimed_again(db: Database, clock: FakeClock) -> None:
    record = Recorder()
    job_id = await add_job(db, payload={"n": 1}, run_at=clock.now)
    [taken] = await claim_and_crash(db, clock.now, lease_s=300)
    assert taken.id == job_id
    job = await must_load(db, job_id)
    assert job.status == JobStatus.RUNNING
    assert job.locked_by == "crashed-host:1234:dead"
    assert job.locked_until == clock.now + timedelta(seconds=300)
    assert job.attempts == 1

    worker = Worker(db, {"record": record}, clock=clock)
    assert await worker.run_once() == 0  # leased to someone else
    clock.advance(seconds=299)
    assert await worker.run_once() == 0
    clock.advance(seconds=2)  # the lease ran out
    assert await worker.run_once() == 1
    assert record.calls == [{"n": 1}]
    job = await must_load(db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert job.locked_by is None


async def test_job_stuck_running_in_the_past_is_recovered(db: Database, clock: FakeClock) -> None:
    record = Recorder()
    job_id = await add_job(db, payload={"n": 1}, run_at=clock.now - timedelta(hours=1))
    async with db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.RUNNING
        job.locked_by = "gone"
        job.locked_until = clock.now - timedelta(seconds=1)
        job.attempts = 1
    worker = Worker(db, {"record": record}, clock=clock)
    assert await worker.run_once() == 1
    assert record.calls == [{"n": 1}]
    assert (await must_load(db, job_id)).status == JobStatus.SUCCEEDED


async def test_late_finish_after_lost_lease_is_ignored(db: Database, clock: FakeClock) -> None:
    """Worker A is too slow: its lease runs out, B runs the job, and A's late result is
    dropped instead of overwriting B's."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def stuck(payload: dict[str, Any]) -> None:
        started.set()
        await release.wait()
        raise RuntimeError("A failed, much too late")

    record = Recorder()
    job_id = await add_job(db, "work", {"n": 1}, run_at=clock.now)
    slow_worker = Worker(db, {"work": stuck}, lease_s=60, clock=clock)
    fast_worker = Worker(db, {"work": record}, lease_s=60, clock=clock)
    assert slow_worker.worker_id != fast_worker.worker_id

    a = asyncio.create_task(slow_worker.run_once())
    await asyncio.wait_for(started.wait(), timeout=5)
    clock.advance(seconds=61)
    assert await fast_worker.run_once() == 1
    assert record.calls == [{"n": 1}]
    release.set()
    assert await asyncio.wait_for(a, timeout=5) == 1

    job = await must_load(db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert job.last_error is None


# --- the loop ----------------------------------------------------------------------------------


async def test_stop_lets_the_running_job_finish(db: Database, clock: FakeClock) -> None:
    started = asyncio.Event()

    async def slow(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(0.2)

    job_id = await add_job(db, "slow", {}, run_at=clock.now)
    worker = Worker(db, {"slow": slow}, poll_s=0.05, clock=clock)
    worker.start()
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(worker.stop(), timeout=5)
    assert (await must_load(db, job_id)).status == JobStatus.SUCCEEDED


async def test_loop_survives_a_failed_poll(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_claim = repository.claim
    polls: list[str] = []

    async def flaky_claim(session: AsyncSession, **kwargs: Any) -> Sequence[Job]:
        polls.append("poll")
        if len(polls) == 1:
            raise ConnectionError("database went away")
        return await real_claim(session, **kwargs)

    monkeypatch.setattr(repository, "claim", flaky_claim)
    record = Recorder()
    await add_job(db, payload={"n": 1}, run_at=clock.now)
    worker = Worker(db, {"record": record}, poll_s=0.05, clock=clock)
    worker.start()
    try:
        await asyncio.wait_for(record.called.wait(), timeout=5)
    finally:
        await asyncio.wait_for(worker.stop(), timeout=5)
    assert record.calls == [{"n": 1}]
    assert len(polls) >= 2


async def test_wake_during_a_poll_is_not_lost(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job committed while the worker is busy polling must not wait for the next poll."""
    record = Recorder()
    await add_job(db, payload={"n": 1}, run_at=clock.now + timedelta(seconds=1))
    worker = Worker(db, {"record": record}, poll_s=60, clock=clock)
    real_claim = repository.claim
    polls: list[str] = []

    async def claim_then_commit_elsewhere(session: AsyncSession, **kwargs: Any) -> Sequence[Job]:
        jobs = await real_claim(session, **kwargs)
        polls.append("poll")
        if len(polls) == 1:
            # Meanwhile another unit of work commits a job that is due and wakes us.
            assert jobs == []
            clock.advance(seconds=2)
            worker.wake()
        return jobs

    monkeypatch.setattr(repository, "claim", claim_then_commit_elsewhere)
    worker.start()
    try:
        await asyncio.wait_for(record.called.wait(), timeout=3)
    finally:
        await asyncio.wait_for(worker.stop(), timeout=5)
    assert record.calls == [{"n": 1}]
