"""Routes: /v1/orgs, members, invitations."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from parley.accounts.models import User
from parley.http.deps import App, Client, CurrentActor, CurrentUser, DbSession, OrgFromPath
from parley.http.errors import error_responses
from parley.kit.pagination import Page, PageParams, page_params
from parley.orgs.models import Invitation, Membership, Organization
from parley.orgs.roles import Role
from parley.orgs.schemas import (
    AcceptedInvitationOut,
    ChangeRoleRequest,
    CreatedInvitationOut,
    CreateInvitationRequest,
    CreateOrgRequest,
    InvitationOut,
    InvitationTokenRequest,
    MemberOut,
    OrgOut,
    UpdateOrgRequest,
)
from parley.orgs.service import invitation_status

router = APIRouter(prefix="/v1/orgs", tags=["organizations"])
invitations = APIRouter(prefix="/v1/invitations", tags=["organizations"])

Paging = Annotated[PageParams, Depends(page_params)]
ORG_ERRORS = error_responses(401, 403, 404, 422)


def org_out(org: Organization, role: Role | str | None) -> OrgOut:
    return OrgOut(
        id=org.id,
        name=org.name,
        personal=org.personal,
        role=Role(role) if role else None,
        created_at=org.created_at,
    )


def member_out(m: Membership, u: User) -> MemberOut:
    return MemberOut(
        id=m.id, user_id=u.id, email=u.email, name=u.name, role=Role(m.role), joined_at=m.created_at
    )


def invitation_out(i: Invitation, now_ts: float) -> InvitationOut:
    return InvitationOut(
        id=i.id,
        org_id=i.org_id,
        email=i.email,
        role=Role(i.role),
        status=invitation_status(i, now_ts),
        invited_by=i.invited_by,
        created_at=i.created_at,
        expires_at=i.expires_at,
    )


@router.get("", responses=error_responses(401), summary="Organisations you belong to")
async def list_orgs(app: App, session: DbSession, actor: CurrentActor) -> Page[OrgOut]:
    if actor.user_id is not None:
        rows = await app.orgs.list_for_user(session, actor.user_id)
        return Page.build(rows, False, lambda r: org_out(r[0], r[1].role), lambda r: r[0].id)
    # An API key belongs to exactly one organisation.
    org = await app.orgs.find(session, actor.key_org_id or "")
    return Page.build([org] if org else [], False, lambda o: org_out(o, None))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 409, 422, 429),
    summary="Create an organisation (you become its owner; free-plan ones are limited)",
)
async def create_org(
    body: CreateOrgRequest, app: App, session: DbSession, user: CurrentUser, client: Client
) -> OrgOut:
    org = await app.orgs.create_for_user(session, owner=user, name=body.name, client_ip=client.ip)
    return org_out(org, Role.OWNER)


@router.get("/{org_id}", responses=ORG_ERRORS, summary="One organisation")
async def get_org(org: OrgFromPath, app: App, session: DbSession) -> OrgOut:
    return org_out(await app.orgs.get(session, org), org.role)


@router.patch("/{org_id}", responses=ORG_ERRORS, summary="Rename an organisation")
async def update_org(
    body: UpdateOrgRequest, org: OrgFromPath, app: App, session: DbSession
) -> OrgOut:
    return org_out(await app.orgs.update(session, org, name=body.name), org.role)


@router.get("/{org_id}/members", responses=ORG_ERRORS, summary="Members and their roles")
async def list_members(
    org: OrgFromPath, app: App, session: DbSession, paging: Paging
) -> Page[MemberOut]:
    rows, has_more = await app.orgs.list_members(
        session, org, limit=paging.limit, after=paging.after
    )
    return Page.build(rows, has_more, lambda r: member_out(*r), lambda r: r[0].id)


@router.patch(
    "/{org_id}/members/{user_id}",
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Change a member's role",
)
async def change_role(
    user_id: str, body: ChangeRoleRequest, org: OrgFromPath, app: App, session: DbSession
) -> MemberOut:
    membership, user = await app.orgs.change_role(session, org, user_id=user_id, role=body.role)
    return member_out(membership, user)


@router.delete(
    "/{org_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 409),
    summary="Remove a member (or leave, with your own user id)",
)
async def remove_member(user_id: str, org: OrgFromPath, app: App, session: DbSession) -> Response:
    await app.orgs.remove_member(session, org, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{org_id}/invitations", responses=ORG_ERRORS, summary="Invitations sent")
async def list_invitations(
    org: OrgFromPath,
    app: App,
    session: DbSession,
    paging: Paging,
    status_: Annotated[
        Literal["pending", "accepted", "declined", "revoked", "expired"] | None,
        Query(alias="status", description="Only invitations in this state."),
    ] = None,
) -> Page[InvitationOut]:
    rows, has_more = await app.orgs.list_invitations(
        session, org, status=status_, limit=paging.limit, after=paging.after
    )
    now_ts = app.clock().timestamp()
    return Page.build(rows, has_more, lambda i: invitation_out(i, now_ts))


@router.post(
    "/{org_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Invite someone by email with a role",
)
async def create_invitation(
    body: CreateInvitationRequest, org: OrgFromPath, app: App, session: DbSession
) -> CreatedInvitationOut:
    created = await app.orgs.invite(session, org, email=body.email, role=body.role)
    base = invitation_out(created.invitation, app.clock().timestamp())
    return CreatedInvitationOut(**base.model_dump(), url=created.url, token=created.token)


@router.delete(
    "/{org_id}/invitations/{invitation_id}",
    responses=error_responses(401, 403, 404, 409),
    summary="Revoke a pending invitation",
)
async def revoke_invitation(
    invitation_id: str, org: OrgFromPath, app: App, session: DbSession
) -> InvitationOut:
    invitation = await app.orgs.revoke_invitation(session, org, invitation_id)
    return invitation_out(invitation, app.clock().timestamp())


@invitations.get(
    "", responses=error_responses(401, 403), summary="Pending invitations addressed to you"
)
async def my_invitations(app: App, session: DbSession, user: CurrentUser) -> Page[InvitationOut]:
    rows = await app.orgs.invitations_for(session, user)
    now_ts = app.clock().timestamp()
    return Page.build(rows, False, lambda i: invitation_out(i, now_ts))


@invitations.post(
    "/accept",
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Accept an invitation sent to your email",
)
async def accept_invitation(
    body: InvitationTokenRequest, app: App, session: DbSession, user: CurrentUser, client: Client
) -> AcceptedInvitationOut:
    org, membership = await app.orgs.accept_invitation(
        session, user, token=body.token, client_ip=client.ip
    )
    return AcceptedInvitationOut(organization=org_out(org, membership.role))


@invitations.post(
    "/decline",
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Decline an invitation sent to your email",
)
async def decline_invitation(
    body: InvitationTokenRequest, app: App, session: DbSession, user: CurrentUser, client: Client
) -> InvitationOut:
    invitation = await app.orgs.decline_invitation(
        session, user, token=body.token, client_ip=client.ip
    )
    return invitation_out(invitation, app.clock().timestamp())
