"""Who is acting, and in which organisation: resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.errors import PermissionDenied
from parley.orgs.roles import Action, Role, Scope, role_allows, scopes_allow


@dataclass(frozen=True, slots=True)
class Actor:
    """A person (user access token) or an API key."""

    user_id: str | None = None
    api_key_id: str | None = None
    # For an API key: its organisation and scopes.
    key_org_id: str | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    # A key's own rate limits, below its plan's.
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    @property
    def is_user(self) -> bool:
        return self.user_id is not None and self.api_key_id is None

    @property
    def id(self) -> str:
        return self.api_key_id or self.user_id or ""

    @property
    def kind(self) -> str:
        return "api_key" if self.api_key_id else "user"


@dataclass(frozen=True, slots=True)
class OrgContext:
    """An actor acting in one organisation it belongs to."""

    org_id: str
    actor: Actor
    role: Role | None = None  # a user's membership role; None for API keys
    ip: str | None = None

    def can(self, action: Action) -> bool:
        if self.role is not None:
            return role_allows(self.role, action)
        return scopes_allow(self.actor.scopes, action)

    def require(self, action: Action) -> None:
        if not self.can(action):
            who = f"role '{self.role}'" if self.role else "this API key's scopes"
            raise PermissionDenied(
                f"{who.capitalize()} may not perform '{action}' in this organisation.",
                code="insufficient_permissions",
            )
