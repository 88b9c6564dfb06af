"""Request dependencies: the unit of work, the caller, and the organisation acted in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from parley.accounts.models import User
from parley.accounts.service import ClientInfo
from parley.context import AppContext
from parley.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from parley.keys.service import looks_like_api_key
from parley.kit.ids import has_prefix
from parley.principal import Actor, OrgContext


def get_app(request: Request) -> AppContext:
    app: AppContext = request.app.state.ctx
    return app


App = Annotated[AppContext, Depends(get_app)]


_READS = frozenset({"GET", "HEAD"})


async def db_session(app: App, request: Request) -> AsyncIterator[AsyncSession]:
    """GET and HEAD only read (on SQLite without the write lock, beside other readers and
    the one writer); every other method is a unit of work that commits once."""
    if request.method in _READS:
        async with app.db.read_session() as session:
            yield session
        return
    async with app.db.session() as session:
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


def extract_token(
    request: HTTPConnection, credentials: HTTPAuthorizationCredentials | None = None
) -> str | None:
    """`Authorization: Bearer ...`, or `x-api-key` as the Anthropic SDK sends it."""
    if credentials is not None and credentials.credentials:
        return credentials.credentials
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def _missing_credentials() -> AuthenticationFailed:
    return AuthenticationFailed(
        "Missing credentials: send 'Authorization: Bearer <access token or API key>'.",
        code="missing_credentials",
    )


async def authenticate(
    app: AppContext, session: AsyncSession | None, token: str
) -> tuple[Actor, User | None]:
    """The actor behind a token; a user token needs a session to load the user."""
    if looks_like_api_key(token):
        return await app.keys.authenticate(app.db, token), None
    if session is None:
        async with app.db.read_session() as own:
            user = await app.accounts.user_for_access_token(own, token)
    else:
        user = await app.accounts.user_for_access_token(session, token)
    return Actor(user_id=user.id), user


def requested_org_id(actor: Actor, user: User | None, header: str | None) -> str:
    """The org named by `Parley-Organization`, else the key's own or the user's default."""
    if header is not None:
        if not has_prefix(header, "org"):
            raise InvalidRequest(
                "Parley-Organization must be an organisation id like org_...",
                code="invalid_organization",
                param="Parley-Organization",
            )
        return header
    if actor.key_org_id is not None:
        return actor.key_org_id
    if user is None or user.default_org_id is None:
        raise InvalidRequest(
            "You belong to no organisation; send Parley-Organization or create one.",
            code="organization_required",
        )
    return user.default_org_id


async def org_context(
    app: AppContext, session: AsyncSession | None, actor: Actor, org_id: str, ip: str | None
) -> OrgContext:
    """The actor in `org_id`; an organisation it does not belong to is a 404."""

    def not_found() -> NotFound:
        return NotFound(f"No organisation {org_id} among yours.", code="org_not_found")

    if actor.api_key_id is not None:
        if actor.key_org_id != org_id:
            raise not_found()
        return OrgContext(org_id=org_id, actor=actor, ip=ip)
    assert actor.user_id is not None
    if session is None:
        async with app.db.read_session() as own:
            role = await app.orgs.role_of(own, org_id, actor.user_id)
    else:
        role = await app.orgs.role_of(session, org_id, actor.user_id)
    if role is None:
        raise not_found()
    return OrgContext(org_id=org_id, actor=actor, role=role, ip=ip)


async def current_actor(
    app: App,
    session: DbSession,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    token = extract_token(request, credentials)
    if token is None:
        raise _missing_credentials()
    actor, user = await authenticate(app, session, token)
    request.state.actor = actor
    request.state.user = user
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


def require_operator(user: User | None) -> User:
    """Platform operators only: people an operator named with `parley admin grant-operator`.
    An API key belongs to one organisation, so it never is one."""
    if user is None or not user.is_platform_admin:
        raise PermissionDenied(
            "Only platform operators may do this; an operator is named with "
            "'parley admin grant-operator EMAIL'.",
            code="operator_only",
        )
    return user


async def current_operator(actor: CurrentActor, request: Request) -> User:
    return require_operator(request.state.user)


CurrentOperator = Annotated[User, Depends(current_operator)]


async def org_from_path(
    app: App,
    session: DbSession,
    actor: CurrentActor,
    client: Client,
    org_id: Annotated[str, Path(description="Organisation id (org_...).")],
) -> OrgContext:
    return await org_context(app, session, actor, org_id, client.ip)


async def org_from_header(
    app: App,
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
    org_id = requested_org_id(actor, request.state.user, parley_organization)
    return await org_context(app, session, actor, org_id, client.ip)


async def connection_context(
    app: AppContext, conn: HTTPConnection, token: str | None, org_header: str | None
) -> OrgContext:
    """The caller behind `token`, in the org it names or its default; no dependency graph,
    and no database round trip for a cached key (the hot path and WebSockets use it)."""
    if token is None:
        raise _missing_credentials()
    actor, user = await authenticate(app, None, token)
    org_id = requested_org_id(actor, user, org_header)
    ip = conn.client.host if conn.client else None
    return await org_context(app, None, actor, org_id, ip)


async def inference_context(app: AppContext, request: Request) -> OrgContext:
    return await connection_context(
        app, request, extract_token(request), request.headers.get("parley-organization")
    )


OrgFromPath = Annotated[OrgContext, Depends(org_from_path)]
OrgFromHeader = Annotated[OrgContext, Depends(org_from_header)]
