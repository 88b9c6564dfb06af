"""Read-only lookups of users, for the domains that show or find people (organisations,
invitations) without touching the accounts tables or depending on the accounts service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from parley.accounts import repository
from parley.accounts.models import User
from parley.kit.emails import normalize_email


class AccountDirectory:
    async def find(self, session: AsyncSession, user_id: str) -> User | None:
        return await repository.get_user(session, user_id)

    async def find_by_email(self, session: AsyncSession, email: str) -> User | None:
        return await repository.get_user_by_email(session, normalize_email(email))

    async def by_ids(self, session: AsyncSession, user_ids: Sequence[str]) -> dict[str, User]:
        return {u.id: u for u in await repository.get_users(session, user_ids)}

    async def hold(self, session: AsyncSession, user_id: str) -> None:
        """Lock the user's row until the transaction ends, so checks counted per user (such
        as free organisations) cannot both pass in two concurrent requests."""
        await repository.lock_user(session, user_id)
