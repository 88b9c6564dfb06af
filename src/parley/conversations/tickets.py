"""One-time tickets that open a conversation's WebSocket.

A browser cannot set headers on a WebSocket, and an access token in the URL ends up in
proxies' and servers' logs. So the client asks for a ticket first (with its usual
credentials) and connects with `?ticket=`. A ticket is signed, lives `ttl_s` seconds, opens
one socket (single use is counted on the shared counters backend, so a ticket issued by one
process is redeemed once by any), and is bound to the caller, the organisation and the
conversation. It also carries the end of the access token behind it: the socket lasts no
longer than that token would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from parley.backends.counters import Counters
from parley.conversations.service import ConversationService
from parley.db.engine import Database
from parley.errors import AuthenticationFailed
from parley.kit.clock import Clock, utcnow
from parley.kit.jwt import AccessTokenSigner, TicketSigner, TokenExpired, TokenInvalid
from parley.principal import OrgContext

TICKET_TYP = "ws_ticket"


@dataclass(frozen=True, slots=True)
class SocketGrant:
    """Whom a redeemed ticket let in; the socket checks it again before every command."""

    conversation_id: str
    org_id: str
    user_id: str | None
    api_key_id: str | None
    # For a user: the access token's issue time (a later password change revokes it) and
    # end (Unix seconds).
    token_issued_at: int | None = None
    token_expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    ticket: str
    expires_at: datetime
    expires_in: int


def _refused(message: str, code: str) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"{message} Get a new one from POST /v1/conversations/{{id}}/ws-ticket.", code=code
    )


class SocketTickets:
    def __init__(
        self,
        db: Database,
        conversations: ConversationService,
        signer: TicketSigner,
        access_tokens: AccessTokenSigner,
        counters: Counters,
        *,
        ttl_s: int,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.conversations = conversations
        self.signer = signer
        self.access_tokens = access_tokens
        self.counters = counters
        self.ttl_s = ttl_s
        self.clock = clock

    async def issue(self, org: OrgContext, conversation_id: str, token: str) -> IssuedTicket:
        """A ticket for the caller behind `token` (already authenticated as `org`), if the
        conversation is one they may see."""
        # Its own read-only unit: asking for a ticket writes nothing, so it takes no lock.
        async with self.db.read_session() as session:
            await self.conversations.get(session, org, conversation_id)
        now = self.clock()
        actor = org.actor
        claims: dict[str, Any] = {"sub": actor.id, "kind": actor.kind, "org": org.org_id}
        claims["conv"] = conversation_id
        if actor.is_user:
            try:
                access = self.access_tokens.verify(token, now)
            except (TokenExpired, TokenInvalid) as exc:  # it expired since it was checked
                raise AuthenticationFailed(
                    "Access token has expired; refresh it or log in again.", code="token_expired"
                ) from exc
            claims["tiat"] = access.issued_at
            claims["texp"] = int(access.expires_at.timestamp())
        ticket = self.signer.issue(TICKET_TYP, claims, now, self.ttl_s)
        return IssuedTicket(ticket, now + timedelta(seconds=self.ttl_s), self.ttl_s)

    async def redeem(self, ticket: str, conversation_id: str) -> SocketGrant:
        """Whom `ticket` lets into `conversation_id`; it lets nobody in again."""
        try:
            claims = self.signer.verify(ticket, TICKET_TYP, self.clock())
            kind, subject = claims["kind"], str(claims["sub"])
            grant = SocketGrant(
                conversation_id=str(claims["conv"]),
                org_id=str(claims["org"]),
                user_id=subject if kind == "user" else None,
                api_key_id=subject if kind == "api_key" else None,
                token_issued_at=int(claims["tiat"]) if kind == "user" else None,
                token_expires_at=int(claims["texp"]) if kind == "user" else None,
            )
        except TokenExpired as exc:
            raise _refused("This ticket has expired.", "ticket_expired") from exc
        except (TokenInvalid, KeyError, TypeError, ValueError) as exc:
            raise _refused("This ticket is not valid.", "invalid_ticket") from exc
        if grant.conversation_id != conversation_id:
            raise _refused("This ticket opens another conversation.", "invalid_ticket")
        # Kept a little longer than the ticket lives, so it is never forgotten while valid.
        uses = await self.counters.incr(f"ws-ticket:{claims['jti']}", self.ttl_s + 5)
        if uses.value > 1:
            raise _refused("This ticket has been used already.", "ticket_used")
        return grant
