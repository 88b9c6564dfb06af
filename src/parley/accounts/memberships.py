"""What accounts need to know about organisations (for audit events and the default
organisation), as a protocol the organisations service satisfies: accounts never imports it."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class Memberships(Protocol):
    async def org_ids_of(self, session: AsyncSession, user_id: str) -> list[str | None]: ...

    async def role_of(self, session: AsyncSession, org_id: str, user_id: str) -> str | None: ...
