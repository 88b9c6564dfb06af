"""Request dependencies: the unit of work, the caller, and the organisation acted in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from parley.accounts.models import User
from parley.accounts.service import ClientInfo
from parley.context import AppContext
from parley.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from parley.keys.service import looks_like_api_key
from parley.kit.ids import has_prefix
from parley.principal import Actor, OrgContext


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def db_session(ctx: Ctx) -> AsyncIterator[AsyncSession]:
    async with ctx.db.session() as session:
        yield session


# Commits when the handler returns, before the response leaves.
DbSession = Annotated[AsyncSession, Depends(db_session, scope="function")]


def client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


Client = Annotated[ClientInfo, Depends(client_info)]

_bearer = HTTPBearer(
    auto_error=False,
    description="A user access token (from /v1/auth/login) or an API key (sk-parley-...).",
)


async def current_actor(
    ctx: Ctx,
    session: DbSession,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or not credentials.credentials:
        raise AuthenticationFailed(
            "Missing credentials: send 'Authorization: Bearer <access token or API key>'.",
            code="missing_credentials",
        )
    token = credentials.credentials
    if looks_like_api_key(token):
        actor = await ctx.keys.authenticate(session, token)
    else:
        user_id = ctx.accounts.user_id_from_access_token(token)
        request.state.user = await ctx.accounts.get_active_user(session, user_id)
        actor = Actor(user_id=user_id)
    request.state.actor = actor
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def current_user(actor: CurrentActor, request: Request) -> User:
    if not actor.is_user:
        raise PermissionDenied(
            "This route acts for a person; use a user access token, not an API key.",
            code="user_token_required",
        )
    user: User = request.state.user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def _org_context(
    ctx: AppContext, session: AsyncSession, actor: Actor, org_id: str, client: ClientInfo
) -> OrgContext:
    not_found = NotFound(f"No organisation {org_id} among yours.", code="org_not_found")
    if actor.api_key_id is not None:
        if actor.key_org_id != org_id:
            raise not_found
        return OrgContext(org_id=org_id, actor=actor, ip=client.ip)
    assert actor.user_id is not None
    role = await ctx.orgs.role_of(session, org_id, actor.user_id)
    if role is None:
        raise not_found
    return OrgContext(org_id=org_id, actor=actor, role=role, ip=client.ip)


async def org_from_path(
    ctx: Ctx,
    session: DbSession,
    actor: CurrentActor,
    client: Client,
    org_id: Annotated[str, Path(description="Organisation id (org_...).")],
) -> OrgContext:
    return await _org_context(ctx, session, actor, org_id, client)


async def org_from_header(
    ctx: Ctx,
    session: DbSession,
    actor: CurrentActor,
    client: Client,
    request: Request,
    parley_organization: Annotated[
        str | None,
        Header(
            description="Organisation to act in (users only; an API key acts in its own). "
            "Defaults to the user's default organisation."
        ),
    ] = None,
) -> OrgContext:
    org_id = parley_organization
    if org_id is None:
        if actor.key_org_id is not None:
            org_id = actor.key_org_id
        else:
            user: User = request.state.user
            org_id = user.default_org_id
            if org_id is None:
                raise InvalidRequest(
                    "You belong to no organisation; send Parley-Organization or create one.",
                    code="organization_required",
                )
    elif not has_prefix(org_id, "org"):
        raise InvalidRequest(
            "Parley-Organization must be an organisation id like org_...",
            code="invalid_organization",
            param="Parley-Organization",
        )
    return await _org_context(ctx, session, actor, org_id, client)


OrgFromPath = Annotated[OrgContext, Depends(org_from_path)]
OrgFromHeader = Annotated[OrgContext, Depends(org_from_header)]
