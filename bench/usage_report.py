"""Usage reports over a million events: how long `GET /v1/usage` queries take.

Fills a fresh SQLite database (and PostgreSQL when reachable) with one million usage events
for one organisation spread over 90 days, then times the report for each grouping next to
a plain count over the same rows (the baseline).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import func, select

from parley.db.engine import Database
from parley.db.migrate import upgrade
from parley.usage import repository
from parley.usage.models import UsageEvent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import pg  # the PostgreSQL (with pgvector) the tests use

EVENTS = 1_000_000
ORG = "org_bench"
START = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = [
    "id",
    "org_id",
    "api_key_id",
    "user_id",
    "endpoint",
    "model",
    "provider",
    "deployment_model",
    "attempts",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_micros",
    "currency",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_type",
    "messages",
    "overage_messages",
    "created_at",
]


def rows(n: int, *, text_time: bool) -> list[tuple[object, ...]]:
    rng = random.Random(7)  # noqa: S311 - benchmark data
    models = ["gpt-4o-mini", "claude-3-5-haiku-latest", "parley-mock", "gemini-2.0-flash"]
    keys = [f"key_{i}" for i in range(20)]
    out = []
    for i in range(n):
        at = START + timedelta(seconds=rng.randrange(90 * 86400))
        p, c = rng.randrange(10, 2000), rng.randrange(1, 800)
        out.append(
            (
                f"req_{i:026d}",
                ORG,
                rng.choice(keys),
                None,
                "chat",
                rng.choice(models),
                "openai",
                "m",
                1,
                False,
                p,
                c,
                0,
                p + c,
                (p * 150_000 + c * 600_000) // 1_000_000,
                "USD",
                300,
                None,
                "ok",
                None,
                1,
                0,
                at.strftime("%Y-%m-%d %H:%M:%S.%f") if text_time else at,
            )
        )
    return out


async def timed(db: Database, label: str) -> None:
    end = START + timedelta(days=90)
    t = time.perf_counter()
    async with db.session() as session:
        # The events were bulk-loaded around the recorder: sum them into their days.
        await repository.rebuild_rollups(session, ORG)
    print(f"  {label:10} rollups built from the events in {time.perf_counter() - t:.1f} s")
    # The ranges a user asks for rarely start at midnight: edges come from events.
    start, end = START + timedelta(hours=13), end - timedelta(hours=5)
    async with db.session() as session:
        t = time.perf_counter()
        await session.execute(
            select(func.count(), func.sum(UsageEvent.cost_micros)).where(
                UsageEvent.org_id == ORG,
                UsageEvent.created_at >= start,
                UsageEvent.created_at < end,
            )
        )
        baseline = time.perf_counter() - t
        print(f"  {label:10} baseline (count + sum over the events) {baseline * 1000:8.1f} ms")
        messages, _cost = await repository.period_totals(
            session, ORG, START, end + timedelta(hours=5)
        )
        for group in ("day", "model", "api_key", "user"):
            t = time.perf_counter()
            result = await repository.report(session, ORG, group_by=group, start=start, end=end)
            took = time.perf_counter() - t
            print(
                f"  {label:10} group_by={group:8} {took * 1000:8.1f} ms  ({len(result)} rows,"
                f" {took / baseline:.2f}x baseline)"
            )
    assert messages == EVENTS, messages


async def sqlite_case(tmp: Path) -> None:
    path = tmp / "usage.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    conn = sqlite3.connect(path)
    marks = ",".join("?" * len(COLUMNS))
    conn.executemany(
        f"INSERT INTO usage_events ({','.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608
        rows(EVENTS, text_time=True),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    db = Database(url)
    await timed(db, "SQLite")
    await db.dispose()


async def postgres_case() -> None:
    name = f"parley_bench_{uuid.uuid4().hex[:8]}"
    server = pg.server()
    admin = await asyncpg.connect(server.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.url(name)
        await asyncio.to_thread(upgrade, url)
        conn = await asyncpg.connect(server.dsn(name))
        await conn.copy_records_to_table(
            "usage_events", records=rows(EVENTS, text_time=False), columns=COLUMNS
        )
        await conn.execute("ANALYZE usage_events")
        await conn.close()
        db = Database(url)
        await timed(db, "PostgreSQL")
        await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    print(f"\nusage report benchmark ({EVENTS:,} events, one organisation, 90 days)")
    with tempfile.TemporaryDirectory() as tmp:
        await sqlite_case(Path(tmp))
    try:
        await postgres_case()
    except (OSError, ImportError) as exc:
        print(f"  PostgreSQL not available ({exc}); skipped", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
