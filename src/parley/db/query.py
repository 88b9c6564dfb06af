"""Query helpers shared by repositories: tenant scoping and cursor pagination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Delete, Select, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.base import Base

M = TypeVar("M", bound=Base)
R = TypeVar("R", bound=Any)


def of_org(model: type[Base], org_id: str) -> ColumnElement[bool]:
    """The condition every query of tenant-owned rows carries, whatever it selects, sums,
    changes or deletes: the helpers below, or `.where(of_org(...))` on a custom statement."""
    return model.__table__.c.org_id == org_id


def scoped(model: type[M], org_id: str) -> Select[M]:
    """The one way to select tenant-owned rows: always filtered to one organisation."""
    return select(model).where(of_org(model, org_id))


def scoped_update(model: type[Base], org_id: str) -> Update:
    return update(model).where(of_org(model, org_id))


def scoped_delete(model: type[Base], org_id: str) -> Delete:
    return delete(model).where(of_org(model, org_id))


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
