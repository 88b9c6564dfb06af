"""Signing up: a new account, its personal organisation, and a first session.

Its own use case over the accounts and organisations services, so that neither of those
domains needs the other's service.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from parley.accounts.service import AccountService, ClientInfo, Session
from parley.address_limits import AddressLimit
from parley.backends.limits import Limiter
from parley.config import Settings
from parley.orgs.service import OrgService


def personal_org_name(org_name: str | None, name: str, email: str) -> str:
    # A blank org_name (like a missing one) means the default name.
    return (org_name or "").strip() or f"{name.strip() or email.split('@', 1)[0]}'s organisation"


class SignUp:
    def __init__(
        self,
        settings: Settings,
        *,
        accounts: AccountService,
        orgs: OrgService,
        limiter: Limiter,
    ) -> None:
        self.accounts = accounts
        self.orgs = orgs
        self.per_address = AddressLimit(
            limiter,
            name="signup",
            limit=settings.signup_limit_per_ip,
            window_s=settings.signup_limit_window_s,
            what="sign-ups",
            code="too_many_signups",
        )

    async def register(
        self,
        session: AsyncSession,
        *,
        email: str,
        password: str,
        name: str,
        org_name: str | None,
        client: ClientInfo,
    ) -> Session:
        # Every attempt counts, failed ones too: they cost a password hash, and they tell
        # which emails have accounts.
        await self.per_address.take(client.ip)
        user = await self.accounts.open_account(session, email=email, password=password, name=name)
        org = await self.orgs.create(
            session,
            owner=user,
            name=personal_org_name(org_name, user.name, user.email),
            client_ip=client.ip,
            personal=True,
        )
        user.default_org_id = org.id
        return await self.accounts.start_session(session, user, client)
