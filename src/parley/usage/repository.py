"""Ledger queries. Long ranges read the per-day rollups; only the partial days at either end
of a range read events (the index on org and time keeps those short)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.query import of_org, scoped_delete
from parley.usage.models import UsageDaily, UsageEvent

GROUPS = ("day", "model", "api_key", "user")
SUMS = (
    "requests",
    "messages",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
    "overage_messages",
)


@dataclass
class ReportRow:
    group: str | None
    requests: int = 0
    messages: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    overage_messages: int = 0


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write events (one already recorded, by id, is left as it is) and add the new ones to
    their days' rollups, in the same transaction."""
    if not rows:
        return
    insert = _insert(session)
    # One cached statement executed over the rows (insertmanyvalues batches it), in Core: the
    # ORM's bulk path costs more per row than the write itself.
    table = cast(Table, UsageEvent.__table__)
    stmt = insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    result = await session.execute(stmt, list(rows))
    new = set(result.scalars().all())
    totals: dict[tuple[str, str, str, str, str], list[int]] = defaultdict(lambda: [0] * 6)
    for row in rows:
        if row["id"] not in new:
            continue
        created: datetime = row["created_at"]
        key = (
            row["org_id"],
            created.astimezone(UTC).strftime("%Y-%m-%d"),
            row["model"],
            row["api_key_id"] or "",
            row["user_id"] or "",
        )
        sums = totals[key]
        sums[0] += 1
        sums[1] += row["messages"]
        sums[2] += row["prompt_tokens"]
        sums[3] += row["completion_tokens"]
        sums[4] += row["cost_micros"]
        sums[5] += row["overage_messages"]
    if not totals:
        return
    daily = cast(Table, UsageDaily.__table__)
    upsert = insert(daily)
    upsert = upsert.on_conflict_do_update(
        index_elements=["org_id", "day", "model", "api_key_id", "user_id"],
        set_={name: daily.c[name] + upsert.excluded[name] for name in SUMS},
    )
    await session.execute(
        upsert,
        [
            {
                "org_id": k[0],
                "day": k[1],
                "model": k[2],
                "api_key_id": k[3],
                "user_id": k[4],
                **dict(zip(SUMS, v, strict=True)),
            }
            for k, v in totals.items()
        ],
    )


def _whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The midnight-aligned part of [start, end), if it holds at least one whole day."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(days=1)
    last = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return (first, last) if first < last else None


def _event_group(session: AsyncSession, group_by: str) -> Any:
    if group_by == "day":
        if session.get_bind().dialect.name == "postgresql":
            return func.to_char(func.timezone("UTC", UsageEvent.created_at), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", UsageEvent.created_at)
    return {
        "model": UsageEvent.model,
        "api_key": UsageEvent.api_key_id,
        "user": UsageEvent.user_id,
    }[group_by]


async def _from_events(
    session: AsyncSession, org_id: str, group_by: str, start: datetime, end: datetime
) -> Sequence[Any]:
    group = _event_group(session, group_by).label("group")
    stmt = (
        select(
            group,
            func.count().label("requests"),
            func.coalesce(func.sum(UsageEvent.messages), 0).label("messages"),
            func.coalesce(func.sum(UsageEvent.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageEvent.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageEvent.cost_micros), 0).label("cost_micros"),
            func.coalesce(func.sum(UsageEvent.overage_messages), 0).label("overage_messages"),
        )
        .where(
            of_org(UsageEvent, org_id),
            UsageEvent.created_at >= start,
            UsageEvent.created_at < end,
        )
        .group_by(group)
    )
    return (await session.execute(stmt)).all()


async def _from_rollups(
    session: AsyncSession, org_id: str, group_by: str, first: datetime, last: datetime
) -> Sequence[Any]:
    column = {
        "day": UsageDaily.day,
        "model": UsageDaily.model,
        "api_key": UsageDaily.api_key_id,
        "user": UsageDaily.user_id,
    }[group_by]
    group = column.label("group")
    stmt = (
        select(group, *(func.sum(getattr(UsageDaily, name)).label(name) for name in SUMS))
        .where(
            of_org(UsageDaily, org_id),
            UsageDaily.day >= first.strftime("%Y-%m-%d"),
            UsageDaily.day < last.strftime("%Y-%m-%d"),
        )
        .group_by(group)
    )
    return (await session.execute(stmt)).all()


async def report(
    session: AsyncSession, org_id: str, *, group_by: str, start: datetime, end: datetime
) -> list[ReportRow]:
    """Requests, messages, tokens and cost per group over [start, end)."""
    parts: list[Sequence[Any]] = []
    days = _whole_days(start, end)
    if days is None:
        parts.append(await _from_events(session, org_id, group_by, start, end))
    else:
        first, last = days
        parts.append(await _from_rollups(session, org_id, group_by, first, last))
        if start < first:
            parts.append(await _from_events(session, org_id, group_by, start, first))
        if last < end:
            parts.append(await _from_events(session, org_id, group_by, last, end))
    merged: dict[str | None, ReportRow] = {}
    for rows in parts:
        for row in rows:
            key = row.group or None  # rollups keep "" for "no key" / "no user"
            into = merged.setdefault(key, ReportRow(key))
            for name in SUMS:
                setattr(into, name, getattr(into, name) + int(getattr(row, name) or 0))
    return [merged[k] for k in sorted(merged, key=lambda k: (k is None, k or ""))]


async def period_totals(
    session: AsyncSession, org_id: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """Messages and cost in micro-USD recorded in a period."""
    rows = await report(session, org_id, group_by="model", start=start, end=end)
    return sum(r.messages for r in rows), sum(r.cost_micros for r in rows)


async def rebuild_rollups(session: AsyncSession, org_id: str) -> None:
    """Recompute an organisation's rollups from its events (after a bulk load or repair)."""
    day = _event_group(session, "day")
    daily = cast(Table, UsageDaily.__table__)
    await session.execute(scoped_delete(UsageDaily, org_id))
    # The same expression objects in SELECT and GROUP BY (PostgreSQL compares them as written).
    key = func.coalesce(UsageEvent.api_key_id, literal_column("''"))
    user = func.coalesce(UsageEvent.user_id, literal_column("''"))
    summed = (
        select(
            UsageEvent.org_id,
            day,
            UsageEvent.model,
            key,
            user,
            func.count(),
            func.sum(UsageEvent.messages),
            func.sum(UsageEvent.prompt_tokens),
            func.sum(UsageEvent.completion_tokens),
            func.sum(UsageEvent.cost_micros),
            func.sum(UsageEvent.overage_messages),
        )
        .where(of_org(UsageEvent, org_id))
        .group_by(UsageEvent.org_id, day, UsageEvent.model, key, user)
    )
    columns = ["org_id", "day", "model", "api_key_id", "user_id", *SUMS]
    await session.execute(daily.insert().from_select(columns, summed))
