from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit.models import AuditEvent
from parley.db.query import paginate, scoped


async def list_events(
    session: AsyncSession, org_id: str, *, action: str | None, limit: int, after: str | None
) -> tuple[Sequence[AuditEvent], bool]:
    stmt = scoped(AuditEvent, org_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return await paginate(session, stmt, AuditEvent.id, limit=limit, after=after, newest_first=True)
