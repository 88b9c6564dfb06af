"""Organisations, their members and roles, and invitations by email."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.audit.actions import AuditAction
from parley.backends.limits import Limiter
from parley.billing.service import BillingService
from parley.config import Settings
from parley.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from parley.kit.clock import Clock, utcnow
from parley.kit.crypto import random_token, sha256_hex
from parley.kit.emails import normalize_email
from parley.kit.ids import new_id
from parley.mail.service import send_email
from parley.orgs import repository
from parley.orgs.creation_limits import OrgCreationLimits
from parley.orgs.models import Invitation, InvitationStatus, Membership, Organization
from parley.orgs.roles import Action, Role
from parley.orgs.users import UserDirectory
from parley.principal import Actor, OrgContext

if TYPE_CHECKING:
    from parley.accounts.models import User


@dataclass(frozen=True, slots=True)
class CreatedInvitation:
    invitation: Invitation
    token: str
    url: str


def invitation_status(invitation: Invitation, now_ts: float) -> str:
    if (
        invitation.status == InvitationStatus.PENDING
        and invitation.expires_at.timestamp() <= now_ts
    ):
        return InvitationStatus.EXPIRED
    return invitation.status


def _org_name(name: str) -> str:
    if not name.strip():
        raise InvalidRequest("Organisation name must not be empty.", param="name")
    return name.strip()


class OrgService:
    def __init__(
        self,
        settings: Settings,
        *,
        billing: BillingService,
        users: UserDirectory,
        limiter: Limiter,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.billing = billing
        self.users = users
        self.clock = clock
        self.creation_limits = OrgCreationLimits(
            settings, billing=billing, users=users, limiter=limiter
        )

    # --- organisations -------------------------------------------------------------------

    async def create_for_user(
        self, session: AsyncSession, *, owner: User, name: str, client_ip: str | None
    ) -> Organization:
        """An organisation a person asks for, within the limits on creating them."""
        _org_name(name)
        await self.creation_limits.check(session, owner, client_ip)
        return await self.create(session, owner=owner, name=name, client_ip=client_ip)

    async def create(
        self,
        session: AsyncSession,
        *,
        owner: User,
        name: str,
        client_ip: str | None,
        personal: bool = False,
    ) -> Organization:
        """Without limits: for sign-up's personal organisation and operators' tools."""
        name = _org_name(name)
        now = self.clock()
        organization = Organization(
            id=new_id("org"),
            name=name,
            personal=personal,
            created_by=owner.id,
            created_at=now,
            updated_at=now,
        )
        session.add(organization)
        await session.flush()  # the membership row refers to it
        session.add(
            Membership(
                id=new_id("mem"),
                org_id=organization.id,
                user_id=owner.id,
                role=Role.OWNER,
                created_at=now,
                updated_at=now,
            )
        )
        self.billing.start_subscription(session, organization.id)
        await session.flush()
        audit.record(
            session,
            AuditAction.ORG_CREATED,
            org_ids=[organization.id],
            actor=Actor(user_id=owner.id),
            ip=client_ip,
            target_type="organization",
            target_id=organization.id,
        )
        return organization

    async def list_for_user(
        self, session: AsyncSession, user_id: str
    ) -> Sequence[tuple[Organization, Membership]]:
        return await repository.memberships_of_user(session, user_id)

    async def org_ids_of(self, session: AsyncSession, user_id: str) -> list[str | None]:
        return list(await repository.org_ids_of_user(session, user_id))

    async def role_of(self, session: AsyncSession, org_id: str, user_id: str) -> Role | None:
        membership = await repository.get_membership(session, org_id, user_id)
        return Role(membership.role) if membership else None

    async def member_count(self, session: AsyncSession, org_id: str) -> int:
        return await repository.count_members(session, org_id)

    async def find(self, session: AsyncSession, org_id: str) -> Organization | None:
        return await repository.get_org(session, org_id)

    async def get(self, session: AsyncSession, org: OrgContext) -> Organization:
        org.require(Action.ORG_READ)
        organization = await repository.get_org(session, org.org_id)
        if organization is None:
            raise NotFound(f"No organisation {org.org_id}.", code="org_not_found")
        return organization

    async def update(self, session: AsyncSession, org: OrgContext, *, name: str) -> Organization:
        org.require(Action.ORG_UPDATE)
        organization = await self.get(session, org)
        organization.name = _org_name(name)
        organization.updated_at = self.clock()
        audit.record_in(
            session,
            org,
            AuditAction.ORG_UPDATED,
            target_type="organization",
            target_id=organization.id,
        )
        return organization

    # --- members -------------------------------------------------------------------------

    async def list_members(
        self, session: AsyncSession, org: OrgContext, *, limit: int, after: str | None
    ) -> tuple[Sequence[tuple[Membership, User]], bool]:
        org.require(Action.MEMBERS_READ)
        members, has_more = await repository.list_members(
            session, org.org_id, limit=limit, after=after
        )
        users = await self.users.by_ids(session, [m.user_id for m in members])
        return [(m, users[m.user_id]) for m in members if m.user_id in users], has_more

    async def _member(self, session: AsyncSession, org: OrgContext, user_id: str) -> Membership:
        # Lock the owner rows before the target's: locking the target first lets two owners
        # demoting each other at once each hold a row the other waits for (a deadlock, 500).
        await repository.count_owners(session, org.org_id, lock=True)
        membership = await repository.get_membership(session, org.org_id, user_id, for_update=True)
        if membership is None:
            raise NotFound(f"No member {user_id} in this organisation.", code="member_not_found")
        return membership

    def _check_can_manage(self, org: OrgContext, *roles: Role) -> None:
        """Only owners grant, change or remove the owner role."""
        if Role.OWNER in roles and not org.can(Action.OWNERS_MANAGE):
            raise PermissionDenied(
                "Only an owner may grant, change or remove the owner role.",
                code="insufficient_permissions",
            )

    async def _keep_an_owner(
        self, session: AsyncSession, org: OrgContext, membership: Membership
    ) -> None:
        if (
            membership.role == Role.OWNER
            and await repository.count_owners(session, org.org_id, lock=True) <= 1
        ):
            raise Conflict(
                "An organisation must keep at least one owner; make someone else owner first.",
                code="last_owner",
            )

    async def change_role(
        self, session: AsyncSession, org: OrgContext, *, user_id: str, role: Role
    ) -> tuple[Membership, User]:
        org.require(Action.MEMBERS_UPDATE)
        membership = await self._member(session, org, user_id)
        self._check_can_manage(org, Role(membership.role), role)
        if membership.role != role:
            if role != Role.OWNER:
                await self._keep_an_owner(session, org, membership)
            previous = membership.role
            membership.role = role
            membership.updated_at = self.clock()
            audit.record_in(
                session,
                org,
                AuditAction.MEMBER_ROLE_CHANGED,
                target_type="user",
                target_id=user_id,
                details={"from": previous, "to": role.value},
            )
        user = await self._user(session, user_id)
        return membership, user

    async def remove_member(self, session: AsyncSession, org: OrgContext, *, user_id: str) -> None:
        leaving_self = org.actor.is_user and org.actor.user_id == user_id
        if not leaving_self:
            org.require(Action.MEMBERS_REMOVE)
        membership = await self._member(session, org, user_id)
        if not leaving_self:
            self._check_can_manage(org, Role(membership.role))
        await self._keep_an_owner(session, org, membership)
        await session.delete(membership)
        user = await self._user(session, user_id)
        if user.default_org_id == org.org_id:
            remaining = [o for o in await self.org_ids_of(session, user_id) if o != org.org_id]
            user.default_org_id = remaining[0] if remaining else None
        audit.record_in(
            session, org, AuditAction.MEMBER_REMOVED, target_type="user", target_id=user_id
        )

    async def _user(self, session: AsyncSession, user_id: str) -> User:
        user = await self.users.find(session, user_id)
        if user is None:
            raise NotFound(f"No member {user_id} in this organisation.", code="member_not_found")
        return user

    # --- invitations ---------------------------------------------------------------------

    async def invite(
        self, session: AsyncSession, org: OrgContext, *, email: str, role: Role
    ) -> CreatedInvitation:
        org.require(Action.INVITATIONS_CREATE)
        self._check_can_manage(org, role)
        # Serialise invitations to this organisation: two at once for the same email would
        # otherwise both pass the pending check below and both be sent.
        await repository.lock_org(session, org.org_id)
        email = normalize_email(email)
        existing_user = await self.users.find_by_email(session, email)
        if existing_user and await repository.get_membership(session, org.org_id, existing_user.id):
            raise Conflict(
                f"{email} is already a member of this organisation.", code="already_member"
            )
        now = self.clock()
        if (
            pending := await repository.pending_invitation_for(session, org.org_id, email)
        ) is not None:
            if pending.expires_at > now:
                raise Conflict(
                    f"{email} already has a pending invitation ({pending.id}); "
                    "revoke it to send a new one.",
                    code="invitation_pending",
                )
            pending.status = InvitationStatus.REVOKED
            pending.responded_at = now
        await self._check_seats(session, org.org_id, now, counting_invitations=True)
        token = "inv_" + random_token(32)
        invitation = Invitation(
            id=new_id("inv"),
            org_id=org.org_id,
            email=email,
            role=role,
            token_hash=sha256_hex(token),
            status=InvitationStatus.PENDING,
            invited_by=org.actor.id,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.invitation_ttl_s),
        )
        session.add(invitation)
        organization = await self.get(session, org)
        url = f"{self.settings.base_url}/invitations/accept?token={quote(token)}"
        send_email(
            session,
            now=now,
            to=email,
            subject=f"You are invited to join {organization.name} on Parley",
            text=(
                f'You have been invited to join the organisation "{organization.name}" on Parley '
                f"as {role.value}.\n\nAccept the invitation here (it expires on "
                f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n{url}\n\n"
                "If you did not expect this, ignore this email.\n"
            ),
        )
        audit.record_in(
            session,
            org,
            AuditAction.INVITATION_CREATED,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": email, "role": role.value},
        )
        return CreatedInvitation(invitation, token, url)

    async def _check_seats(
        self, session: AsyncSession, org_id: str, now: datetime, *, counting_invitations: bool
    ) -> None:
        """Members plus open invitations may not exceed the plan's seats."""
        seats = await self.billing.seats(session, org_id)
        if seats is None:
            return
        members = await repository.count_members(session, org_id)
        invited = (
            await repository.count_open_invitations(session, org_id, now)
            if counting_invitations
            else 0
        )
        if members + invited >= seats:
            plan = (await self.billing.limits_in(session, org_id)).plan.name
            raise Conflict(
                f"The {plan} plan includes {seats} seat{'s' if seats != 1 else ''}, and "
                f"{members} member(s) and {invited} open invitation(s) take them all; "
                "upgrade the plan, revoke an invitation or remove a member.",
                code="seat_limit_reached",
            )

    async def list_invitations(
        self,
        session: AsyncSession,
        org: OrgContext,
        *,
        status: str | None,
        limit: int,
        after: str | None,
    ) -> tuple[Sequence[Invitation], bool]:
        org.require(Action.INVITATIONS_READ)
        return await repository.list_invitations(
            session, org.org_id, status=status, now=self.clock(), limit=limit, after=after
        )

    async def revoke_invitation(
        self, session: AsyncSession, org: OrgContext, invitation_id: str
    ) -> Invitation:
        org.require(Action.INVITATIONS_REVOKE)
        invitation = await repository.get_invitation(session, org.org_id, invitation_id)
        if invitation is None:
            raise NotFound(f"No invitation {invitation_id}.", code="invitation_not_found")
        if invitation.status != InvitationStatus.PENDING:
            raise Conflict(
                f"Invitation {invitation_id} is already {invitation.status}.",
                code="invitation_not_pending",
            )
        invitation.status = InvitationStatus.REVOKED
        invitation.responded_at = self.clock()
        audit.record_in(
            session,
            org,
            AuditAction.INVITATION_REVOKED,
            target_type="invitation",
            target_id=invitation.id,
        )
        return invitation

    async def _open_invitation(self, session: AsyncSession, user: User, token: str) -> Invitation:
        invitation = await repository.get_invitation_by_token(session, sha256_hex(token))
        # Someone else's invitation is as unknown to this user as a made-up token.
        if invitation is None or invitation.email != user.email:
            raise NotFound(
                "No invitation for your account matches this token.", code="invitation_not_found"
            )
        status = invitation_status(invitation, self.clock().timestamp())
        if status != InvitationStatus.PENDING:
            raise Conflict(
                f"This invitation is {status}; ask for a new one.", code="invitation_not_pending"
            )
        return invitation

    async def accept_invitation(
        self, session: AsyncSession, user: User, *, token: str, client_ip: str | None
    ) -> tuple[Organization, Membership]:
        invitation = await self._open_invitation(session, user, token)
        now = self.clock()
        if await repository.get_membership(session, invitation.org_id, user.id) is not None:
            raise Conflict("You are already a member of this organisation.", code="already_member")
        await repository.lock_org(session, invitation.org_id)
        await self._check_seats(session, invitation.org_id, now, counting_invitations=False)
        membership = Membership(
            id=new_id("mem"),
            org_id=invitation.org_id,
            user_id=user.id,
            role=invitation.role,
            created_at=now,
            updated_at=now,
        )
        session.add(membership)
        invitation.status = InvitationStatus.ACCEPTED
        invitation.responded_at = now
        invitation.accepted_by = user.id
        if user.default_org_id is None:
            user.default_org_id = invitation.org_id
        audit.record(
            session,
            AuditAction.INVITATION_ACCEPTED,
            org_ids=[invitation.org_id],
            actor=Actor(user_id=user.id),
            ip=client_ip,
            target_type="invitation",
            target_id=invitation.id,
        )
        organization = await repository.get_org(session, invitation.org_id)
        assert organization is not None
        return organization, membership

    async def decline_invitation(
        self, session: AsyncSession, user: User, *, token: str, client_ip: str | None
    ) -> Invitation:
        invitation = await self._open_invitation(session, user, token)
        invitation.status = InvitationStatus.DECLINED
        invitation.responded_at = self.clock()
        audit.record(
            session,
            AuditAction.INVITATION_DECLINED,
            org_ids=[invitation.org_id],
            actor=Actor(user_id=user.id),
            ip=client_ip,
            target_type="invitation",
            target_id=invitation.id,
        )
        return invitation

    async def invitations_for(self, session: AsyncSession, user: User) -> Sequence[Invitation]:
        now_ts = self.clock().timestamp()
        pending = await repository.pending_invitations_for_email(session, user.email)
        return [i for i in pending if invitation_status(i, now_ts) == InvitationStatus.PENDING]
