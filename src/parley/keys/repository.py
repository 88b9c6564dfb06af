from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.query import paginate, scoped
from parley.keys.models import ApiKey


async def get(session: AsyncSession, org_id: str, key_id: str) -> ApiKey | None:
    return await session.scalar(scoped(ApiKey, org_id).where(ApiKey.id == key_id))


async def get_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


async def list_keys(
    session: AsyncSession, org_id: str, *, include_revoked: bool, limit: int, after: str | None
) -> tuple[Sequence[ApiKey], bool]:
    stmt = scoped(ApiKey, org_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return await paginate(session, stmt, ApiKey.id, limit=limit, after=after, newest_first=True)


async def touch(session: AsyncSession, key_ids: Iterable[str], when: datetime) -> None:
    await session.execute(
        update(ApiKey).where(ApiKey.id.in_(list(key_ids))).values(last_used_at=when)
    )
