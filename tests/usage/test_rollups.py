"""Reports read per-day rollups for whole days and events for partial days: same sums."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.db.engine import Database
from parley.usage import repository

START = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)


def _event(i: int, at: datetime, rng: random.Random) -> dict[str, Any]:
    prompt, completion = rng.randrange(1, 50), rng.randrange(1, 50)
    return {
        "id": f"req_{i:026d}", "org_id": "org_r", "api_key_id": rng.choice(["key_a", None]),
        "user_id": rng.choice(["usr_a", None]), "endpoint": "chat",
        "model": rng.choice(["m1", "m2"]), "provider": "p", "deployment_model": "d",
        "attempts": 1, "stream": False, "prompt_tokens": prompt,
        "completion_tokens": completion, "reasoning_tokens": 0,
        "total_tokens": prompt + completion, "cost_micros": prompt * 3 + completion,
        "currency": "USD", "latency_ms": 1, "ttft_ms": None, "status": "ok",
        "error_type": None, "messages": rng.choice([0, 1, 1, 2]),
        "overage_messages": rng.choice([0, 0, 0, 1]),
        "created_at": at,
    }  # fmt: skip


async def test_rollups_and_events_agree_on_any_range(database_url: str) -> None:
    rng = random.Random(3)
    events = [_event(i, START + timedelta(minutes=37 * i), rng) for i in range(300)]
    db = Database(database_url)
    try:
        async with db.session() as session:
            await repository.insert_events(session, events[:200])
        async with db.session() as session:
            # A replayed batch (same ids) adds nothing to the rollups.
            await repository.insert_events(session, events[150:])
        ranges = [
            (START, START + timedelta(days=8)),  # partial first day, whole days, partial last
            (START + timedelta(hours=9), START + timedelta(days=2, hours=1)),
            (START + timedelta(hours=1), START + timedelta(hours=5)),  # within one day
            (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)),  # whole days
        ]
        for start, end in ranges:
            inside = [e for e in events if start <= e["created_at"] < end]
            for group_by, key in (
                ("model", "model"),
                ("api_key", "api_key_id"),
                ("user", "user_id"),
            ):
                async with db.session() as session:
                    rows = await repository.report(
                        session, "org_r", group_by=group_by, start=start, end=end
                    )
                got = {
                    r.group: (r.requests, r.messages, r.cost_micros, r.overage_messages)
                    for r in rows
                }
                want: dict[str | None, tuple[int, int, int, int]] = {}
                for e in inside:
                    r, m, c, o = want.get(e[key], (0, 0, 0, 0))
                    want[e[key]] = (
                        r + 1,
                        m + e["messages"],
                        c + e["cost_micros"],
                        o + e["overage_messages"],
                    )
                assert got == want, (start, end, group_by)
            async with db.session() as session:
                days = await repository.report(
                    session, "org_r", group_by="day", start=start, end=end
                )
            assert sum(d.requests for d in days) == len(inside)
            assert [d.group for d in days] == sorted(
                {e["created_at"].strftime("%Y-%m-%d") for e in inside}
            )
    finally:
        await db.dispose()
