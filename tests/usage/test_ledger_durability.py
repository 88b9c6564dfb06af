"""No usage event is lost: a row the database refuses is set aside without holding up the
others, and what a shutdown could not write is spilled to the data directory and written by
the next start."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import select

from parley.db.engine import Database
from parley.kit.ids import new_id
from parley.usage.models import UsageEvent
from parley.usage.recorder import QUARANTINE_FILE, SPILL_DIR, Usage, UsageRecorder
from tests.usage.conftest import free_port


def usage(org_id: str | None = "org_ledger", **fields: object) -> Usage:
    event = Usage(
        id=new_id("req"),
        org_id=org_id,  # type: ignore[arg-type]  # a bad row has none
        api_key_id=None,
        user_id="usr_ledger",
        endpoint="chat",
        model="parley-mock",
        provider="mock",
        deployment_model="parley-mock",
        attempts=1,
        stream=False,
        prompt_tokens=3,
        completion_tokens=4,
        reasoning_tokens=0,
        total_tokens=7,
        cost_micros=11,
        latency_ms=5,
        ttft_ms=None,
        status="ok",
        error_type=None,
        created_at=datetime.now(UTC),
        messages=1,
    )
    return dataclasses.replace(event, **fields)


async def ledger_ids(db: Database) -> set[str]:
    async with db.session() as session:
        return set(await session.scalars(select(UsageEvent.id)))


async def test_a_bad_row_is_set_aside_and_the_rest_are_written(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    recorder = UsageRecorder(db, flush_s=3600, data_dir=tmp_path)
    try:
        good = [usage() for _ in range(7)]
        bad = usage(org_id=None)  # the ledger requires an organisation
        for event in [*good[:3], bad, *good[3:]]:
            recorder.record(event)
        assert await recorder.flush() == 7
        assert await ledger_ids(db) == {e.id for e in good}
        assert recorder.pending == 0, "nothing is left to fail every later flush"

        later = usage()
        recorder.record(later)
        assert await recorder.flush() == 1
        assert later.id in await ledger_ids(db)

        [kept] = (tmp_path / QUARANTINE_FILE).read_bytes().splitlines()
        assert orjson.loads(kept)["id"] == bad.id, "the bad row is kept for a person to see"
    finally:
        await db.dispose()


async def test_what_the_last_flush_could_not_write_is_written_by_the_next_start(
    database_url: str, tmp_path: Path
) -> None:
    # The database is unreachable at shutdown.
    gone = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    recorder = UsageRecorder(gone, flush_s=3600, data_dir=tmp_path)
    events = [usage() for _ in range(5)]
    recorder.start()
    for event in events:
        recorder.record(event)
    await recorder.stop()
    await gone.dispose()
    spilled = list((tmp_path / SPILL_DIR).glob("*.jsonl"))
    assert len(spilled) == 1
    assert not list((tmp_path / SPILL_DIR).glob(".*")), "only whole files are left"

    db = Database(database_url)
    try:
        again = UsageRecorder(db, flush_s=3600, data_dir=tmp_path)
        assert await again.replay_spilled() == 5
        async with db.session() as session:
            rows = {r.id: r for r in await session.scalars(select(UsageEvent))}
        assert set(rows) == {e.id for e in events}
        first = rows[events[0].id]
        assert (first.messages, first.cost_micros, first.created_at) == (
            1,
            11,
            events[0].created_at,
        )
        assert not list((tmp_path / SPILL_DIR).glob("*.jsonl")), "a replayed file goes"
        assert await again.replay_spilled() == 0
    finally:
        await db.dispose()


async def test_totals_read_during_a_flush_count_each_event_once(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    recorder = UsageRecorder(db, flush_s=3600, data_dir=tmp_path)
    try:
        for _ in range(40):
            recorder.record(usage())
        start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        flushing = asyncio.create_task(recorder.flush())
        await asyncio.sleep(0)  # the flush has the batch and is writing it
        async with db.read_session() as session:
            during = await recorder.period_totals(session, "org_ledger", start, end)
        assert await flushing == 40
        async with db.read_session() as session:
            after = await recorder.period_totals(session, "org_ledger", start, end)
        assert during == after == (40, 40 * 11), "never in the ledger and the buffer at once"
    finally:
        await db.dispose()
