"""What stops a person from multiplying the free plan by creating organisations: a cap on
the free-plan organisations they created or own, and a limit per client address.

Organisations on a paid plan, and memberships of other people's organisations, do not
count. Operators are not limited, and `parley admin bootstrap` does not come this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from parley.address_limits import AddressLimit
from parley.backends.limits import Limiter
from parley.billing.service import BillingService
from parley.config import Settings
from parley.errors import Conflict
from parley.orgs import repository
from parley.orgs.users import UserDirectory

if TYPE_CHECKING:
    from parley.accounts.models import User


class OrgCreationLimits:
    def __init__(
        self,
        settings: Settings,
        *,
        billing: BillingService,
        users: UserDirectory,
        limiter: Limiter,
    ) -> None:
        self.max_free = settings.max_free_orgs_per_user
        self.billing = billing
        self.users = users
        self.per_address = AddressLimit(
            limiter,
            name="org-create",
            limit=settings.org_creation_limit_per_ip,
            window_s=settings.org_creation_limit_window_s,
            what="new organisations",
            code="too_many_org_creations",
        )

    async def check(self, session: AsyncSession, owner: User, client_ip: str | None) -> None:
        if owner.is_platform_admin:
            return
        # Held until the transaction ends: two requests at once must not both see room.
        await self.users.hold(session, owner.id)
        org_ids = await repository.org_ids_created_or_owned_by(session, owner.id)
        free = await self.billing.count_on_free_plan(session, org_ids)
        if free >= self.max_free:
            have = f"{free} organisation{'s' if free != 1 else ''}"
            raise Conflict(
                f"You already have {have} on the free plan, the most allowed "
                f"({self.max_free}); upgrade one of them to a paid plan, or ask an operator, "
                "to create another.",
                code="free_org_limit_reached",
            )
        await self.per_address.take(client_ip)
