"""Query helpers shared by repositories: tenant scoping and cursor pagination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.base import Base

M = TypeVar("M", bound=Base)
R = TypeVar("R", bound=Any)


def scoped(model: type[M], org_id: str) -> Select[M]:
    """The one way to select tenant-owned rows: always filtered to one organisation."""
    return select(model).where(model.__table__.c.org_id == org_id)


async def paginate(
    session: AsyncSession,
    stmt: Select[R],
    id_column: Any,
    *,
    limit: int,
    after: str | None,
    newest_first: bool = False,
) -> tuple[Sequence[R], bool]:
    """Keyset pagination over a time-sortable id column; returns (rows, has_more)."""
    if after is not None:
        stmt = stmt.where(id_column < after if newest_first else id_column > after)
    stmt = stmt.order_by(id_column.desc() if newest_first else id_column.asc()).limit(limit + 1)
    rows = (await session.scalars(stmt)).all()
    return rows[:limit], len(rows) > limit
