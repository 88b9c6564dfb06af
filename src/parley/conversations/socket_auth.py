"""Who is on a conversation socket, checked when it opens, before every command and every
minute: a redeemed one-time ticket (what browsers use), or the `Authorization` header (other
clients). An access token in the URL is refused: logs and proxies keep URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.websockets import WebSocket

from parley.context import AppContext
from parley.conversations.tickets import SocketGrant
from parley.errors import AuthenticationFailed
from parley.http.deps import connection_context, extract_token, org_context
from parley.principal import Actor, OrgContext

_GET_A_TICKET = (
    "get a ticket from POST /v1/conversations/{id}/ws-ticket and connect with ?ticket=, "
    "or send 'Authorization: Bearer ...'"
)


class SocketCredentials(Protocol):
    async def context(self) -> OrgContext:
        """The caller in their organisation, as things stand now."""
        ...


@dataclass
class BearerCredentials:
    app: AppContext
    ws: WebSocket
    token: str
    org_header: str | None

    async def context(self) -> OrgContext:
        return await connection_context(self.app, self.ws, self.token, self.org_header)


@dataclass
class TicketCredentials:
    app: AppContext
    ws: WebSocket
    grant: SocketGrant

    async def context(self) -> OrgContext:
        grant = self.grant
        if grant.api_key_id is not None:
            actor = await self.app.keys.actor_for(self.app.db, grant.org_id, grant.api_key_id)
        else:
            assert grant.user_id is not None
            actor = await self._user(grant.user_id)
        ip = self.ws.client.host if self.ws.client else None
        return await org_context(self.app, None, actor, grant.org_id, ip)

    async def _user(self, user_id: str) -> Actor:
        """The user, still active, and the access token behind the ticket still good."""
        expires_at, issued_at = self.grant.token_expires_at, self.grant.token_issued_at
        if expires_at is None or expires_at <= self.app.clock().timestamp():
            raise AuthenticationFailed(
                "The access token behind this socket has expired; refresh it, get a new "
                "ticket and reconnect.",
                code="token_expired",
            )
        # Its own read-only unit: a socket has no request around it.
        async with self.app.db.read_session() as session:
            user = await self.app.accounts.get_active_user(session, user_id)
        if issued_at is None or issued_at < int(user.password_changed_at.timestamp()):
            raise AuthenticationFailed(
                "The password was changed since this socket opened; log in again.",
                code="token_revoked",
            )
        return Actor(user_id=user.id)


async def socket_credentials(
    app: AppContext, ws: WebSocket, conversation_id: str
) -> SocketCredentials:
    if "access_token" in ws.query_params:
        raise AuthenticationFailed(
            f"Access tokens are not accepted in the URL, where logs keep them: {_GET_A_TICKET}.",
            code="token_in_url",
        )
    ticket = ws.query_params.get("ticket")
    if ticket:
        grant = await app.socket_tickets.redeem(ticket, conversation_id)
        return TicketCredentials(app, ws, grant)
    token = extract_token(ws)
    if token:
        org_header = ws.headers.get("parley-organization") or ws.query_params.get("org")
        return BearerCredentials(app, ws, token, org_header)
    raise AuthenticationFailed(f"Missing credentials: {_GET_A_TICKET}.", code="missing_credentials")
