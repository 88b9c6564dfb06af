"""The job runner: the in-process worker of the embedded default and `parley worker`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog

from parley.db.engine import Database
from parley.jobs import repository
from parley.jobs.models import Job, JobStatus
from parley.kit.clock import Clock, utcnow

log = structlog.get_logger("parley.jobs")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class RetryLater(Exception):
    """Raised by a handler to be retried without counting as an error in the log."""


def backoff_s(attempt: int, base: float = 2.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to 2 s, then 4 s, 8 s..."""
    try:
        ceiling = min(cap, base**attempt)
    except OverflowError:  # a float power past ~1e308; the cap applies long before
        ceiling = cap
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


class Worker:
    def __init__(
        self,
        db: Database,
        handlers: dict[str, Handler],
        *,
        concurrency: int = 4,
        poll_s: float = 1.0,
        lease_s: int = 300,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.clock = clock
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Called after a commit that enqueued jobs, so they run without waiting for a poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="parley-worker")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def run_forever(self) -> None:
        while not self._stopping:
            # Cleared before the poll, not after: a commit that wakes us while we poll must
            # still cut the next wait short.
            self._wake.clear()
            try:
                ran = await self.run_once()
            except Exception:
                log.exception("worker.poll_failed")
                ran = 0
            if ran or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)

    async def run_once(self) -> int:
        """Claim a batch of due jobs and run them; returns how many ran."""
        now = self.clock()
        async with self.db.session() as session:
            jobs = await repository.claim(
                session,
                now=now,
                lease_until=now + timedelta(seconds=self.lease_s),
                worker_id=self.worker_id,
                limit=self.concurrency,
            )
            claimed = [(j.id, j.kind, dict(j.payload), j.attempts, j.max_attempts) for j in jobs]
        await asyncio.gather(*(self._run(*c) for c in claimed))
        return len(claimed)

    async def _run(
        self, job_id: str, kind: str, payload: dict[str, Any], attempts: int, max_attempts: int
    ) -> None:
        handler = self.handlers.get(kind)
        error: str | None = None
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {kind!r}")
            await handler(payload)
        except RetryLater as exc:
            error = str(exc) or "retry requested"
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            log.warning("job.failed", job_id=job_id, kind=kind, attempt=attempts, error=error)
        await self._finish(job_id, attempts, max_attempts, error)

    async def _finish(
        self, job_id: str, attempts: int, max_attempts: int, error: str | None
    ) -> None:
        now = self.clock()
        async with self.db.session() as session:
            job: Job | None = await repository.get(session, job_id)
            if job is None or job.locked_by != self.worker_id:
                return  # the lease ran out and another worker took it
            job.locked_until = None
            job.locked_by = None
            if error is None:
                job.status = JobStatus.SUCCEEDED
                job.finished_at = now
                job.last_error = None
            elif attempts >= max_attempts:
                job.status = JobStatus.DEAD
                job.finished_at = now
                job.last_error = error
                log.error("job.dead", job_id=job_id, kind=job.kind, attempts=attempts)
            else:
                job.status = JobStatus.QUEUED
                job.last_error = error
                job.run_at = now + timedelta(seconds=backoff_s(attempts))
