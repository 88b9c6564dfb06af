from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.usage.models import UsageEvent


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """One multi-row insert; an event already recorded (same id) is left as it is."""
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(UsageEvent).values(list(rows)).on_conflict_do_nothing(index_elements=["id"])
    await session.execute(stmt)
