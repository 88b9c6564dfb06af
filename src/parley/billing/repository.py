from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.billing.models import PlanRow, QuotaNotice, Subscription
from parley.db.query import scoped


async def all_plans(session: AsyncSession) -> Sequence[PlanRow]:
    return (await session.scalars(select(PlanRow).order_by(PlanRow.sort_order))).all()


async def subscription(
    session: AsyncSession, org_id: str, *, for_update: bool = False
) -> Subscription | None:
    stmt = scoped(Subscription, org_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def add_notice(session: AsyncSession, notice: QuotaNotice) -> bool:
    """Insert unless this threshold was already recorded this period; True when new."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {c.name: getattr(notice, c.name) for c in QuotaNotice.__table__.columns}
    stmt = (
        insert(QuotaNotice)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["org_id", "period_start", "quota", "threshold"])
        .returning(QuotaNotice.id)
    )
    return (await session.scalar(stmt)) is not None


async def notices(
    session: AsyncSession, org_id: str, period_start: datetime
) -> Sequence[QuotaNotice]:
    stmt = scoped(QuotaNotice, org_id).where(QuotaNotice.period_start == period_start)
    return (await session.scalars(stmt.order_by(QuotaNotice.id))).all()


async def plan_ids(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, str]:
    """Each listed organisation's plan (those without a subscription are left out); the
    ids come from the caller's own memberships, so no other tenant is read."""
    if not org_ids:
        return {}
    stmt = select(Subscription.org_id, Subscription.plan_id).where(Subscription.org_id.in_(org_ids))
    return dict((await session.execute(stmt)).all())
