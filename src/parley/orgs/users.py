"""What organisations need to know about users: lookups (and a row lock that writes
nothing), never the accounts service (which itself reads memberships), so neither domain
imports the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from parley.accounts.models import User


class UserDirectory(Protocol):
    async def find(self, session: AsyncSession, user_id: str) -> User | None: ...

    async def find_by_email(self, session: AsyncSession, email: str) -> User | None: ...

    async def by_ids(self, session: AsyncSession, user_ids: Sequence[str]) -> dict[str, User]: ...

    async def hold(self, session: AsyncSession, user_id: str) -> None:
        """Lock the user until the transaction ends (serialises per-user limits)."""
        ...
