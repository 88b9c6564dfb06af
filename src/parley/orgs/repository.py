from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.query import paginate, scoped
from parley.orgs.models import Invitation, InvitationStatus, Membership, Organization


async def get_org(session: AsyncSession, org_id: str) -> Organization | None:
    return await session.get(Organization, org_id)


async def lock_org(session: AsyncSession, org_id: str) -> Organization | None:
    """Take the organisation's row lock, serialising writers that check-then-insert in it."""
    stmt = select(Organization).where(Organization.id == org_id).with_for_update()
    return await session.scalar(stmt)


async def memberships_of_user(
    session: AsyncSession, user_id: str
) -> Sequence[tuple[Organization, Membership]]:
    stmt = (
        select(Organization, Membership)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.id)
    )
    return [(o, m) for o, m in (await session.execute(stmt)).all()]


async def org_ids_of_user(session: AsyncSession, user_id: str) -> list[str]:
    stmt = select(Membership.org_id).where(Membership.user_id == user_id)
    return list((await session.scalars(stmt)).all())


async def org_ids_created_or_owned_by(session: AsyncSession, user_id: str) -> list[str]:
    owned = select(Membership.org_id).where(
        Membership.user_id == user_id, Membership.role == "owner"
    )
    stmt = select(Organization.id).where(
        or_(Organization.created_by == user_id, Organization.id.in_(owned))
    )
    return list((await session.scalars(stmt)).all())


async def get_membership(
    session: AsyncSession, org_id: str, user_id: str, *, for_update: bool = False
) -> Membership | None:
    stmt = scoped(Membership, org_id).where(Membership.user_id == user_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def list_members(
    session: AsyncSession, org_id: str, *, limit: int, after: str | None
) -> tuple[Sequence[Membership], bool]:
    return await paginate(
        session, scoped(Membership, org_id), Membership.id, limit=limit, after=after
    )


async def count_owners(session: AsyncSession, org_id: str, *, lock: bool = False) -> int:
    owners = scoped(Membership, org_id).where(Membership.role == "owner")
    if lock:
        # Lock the owner rows so two concurrent demotions cannot both pass the check; always
        # in id order, so two transactions locking them cannot each hold one the other wants.
        owners = owners.order_by(Membership.id).with_for_update()
        return len((await session.scalars(owners)).all())
    stmt = select(func.count()).select_from(owners.subquery())
    return int(await session.scalar(stmt) or 0)


async def get_invitation(
    session: AsyncSession, org_id: str, invitation_id: str
) -> Invitation | None:
    return await session.scalar(scoped(Invitation, org_id).where(Invitation.id == invitation_id))


async def get_invitation_by_token(session: AsyncSession, token_hash: str) -> Invitation | None:
    stmt = select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
    return await session.scalar(stmt)


async def pending_invitation_for(
    session: AsyncSession, org_id: str, email: str
) -> Invitation | None:
    stmt = scoped(Invitation, org_id).where(
        Invitation.email == email, Invitation.status == "pending"
    )
    return await session.scalar(stmt)


async def list_invitations(
    session: AsyncSession,
    org_id: str,
    *,
    status: str | None,
    now: datetime,
    limit: int,
    after: str | None,
) -> tuple[Sequence[Invitation], bool]:
    stmt = scoped(Invitation, org_id)
    if status == InvitationStatus.EXPIRED:
        stmt = stmt.where(
            Invitation.status == InvitationStatus.PENDING, Invitation.expires_at <= now
        )
    elif status == InvitationStatus.PENDING:
        stmt = stmt.where(
            Invitation.status == InvitationStatus.PENDING, Invitation.expires_at > now
        )
    elif status is not None:
        stmt = stmt.where(Invitation.status == status)
    return await paginate(session, stmt, Invitation.id, limit=limit, after=after, newest_first=True)


async def pending_invitations_for_email(session: AsyncSession, email: str) -> Sequence[Invitation]:
    stmt = select(Invitation).where(Invitation.email == email, Invitation.status == "pending")
    return (await session.scalars(stmt.order_by(Invitation.id))).all()


async def count_members(session: AsyncSession, org_id: str) -> int:
    stmt = select(func.count()).select_from(scoped(Membership, org_id).subquery())
    return int(await session.scalar(stmt) or 0)


async def count_open_invitations(session: AsyncSession, org_id: str, now: datetime) -> int:
    open_ = scoped(Invitation, org_id).where(
        Invitation.status == InvitationStatus.PENDING, Invitation.expires_at > now
    )
    return int(await session.scalar(select(func.count()).select_from(open_.subquery())) or 0)
