from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.usage.models import UsageEvent


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """One multi-row insert; an event already recorded (same id) is left as it is."""
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # One cached statement executed over the rows (insertmanyvalues batches it): compiling a
    # statement with thousands of literal VALUES would hold the event loop for milliseconds.
    # Core, not ORM: the ORM's bulk path costs more per row than the write itself.
    table = cast(Table, UsageEvent.__table__)
    stmt = insert(table).on_conflict_do_nothing(index_elements=["id"])
    await session.execute(stmt, list(rows))


async def period_totals(
    session: AsyncSession, org_id: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """Messages (successful chat replies) and cost in micro-USD recorded in a period."""
    stmt = select(
        func.count().filter(UsageEvent.counted.is_(True)),
        func.coalesce(func.sum(UsageEvent.cost_micros), 0),
    ).where(
        UsageEvent.org_id == org_id, UsageEvent.created_at >= start, UsageEvent.created_at < end
    )
    messages, cost = (await session.execute(stmt)).one()
    return int(messages or 0), int(cost or 0)


GROUPS = ("day", "model", "api_key", "user")


def _group_column(session: AsyncSession, group_by: str) -> Any:
    if group_by == "day":
        if session.get_bind().dialect.name == "postgresql":
            return func.to_char(func.timezone("UTC", UsageEvent.created_at), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", UsageEvent.created_at)
    return {
        "model": UsageEvent.model,
        "api_key": UsageEvent.api_key_id,
        "user": UsageEvent.user_id,
    }[group_by]


async def report(
    session: AsyncSession, org_id: str, *, group_by: str, start: datetime, end: datetime
) -> Sequence[Any]:
    """Requests, messages, tokens and cost per group, from the ledger (index: org, time)."""
    group = _group_column(session, group_by).label("group")
    stmt = (
        select(
            group,
            func.count().label("requests"),
            func.count().filter(UsageEvent.counted.is_(True)).label("messages"),
            func.coalesce(func.sum(UsageEvent.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageEvent.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageEvent.cost_micros), 0).label("cost_micros"),
            func.count().filter(UsageEvent.overage.is_(True)).label("overage_messages"),
        )
        .where(
            UsageEvent.org_id == org_id,
            UsageEvent.created_at >= start,
            UsageEvent.created_at < end,
        )
        .group_by(group)
        .order_by(group)
    )
    return (await session.execute(stmt)).all()
