"""What each role may do: the one table every permission check reads."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class Scope(StrEnum):
    """What an API key may be used for."""

    INFERENCE = "inference"
    CONVERSATIONS = "conversations"
    KNOWLEDGE = "knowledge"
    ADMIN = "admin"


class Action(StrEnum):
    ORG_READ = "org.read"
    ORG_UPDATE = "org.update"
    ORG_DELETE = "org.delete"
    MEMBERS_READ = "members.read"
    MEMBERS_UPDATE = "members.update"
    MEMBERS_REMOVE = "members.remove"
    OWNERS_MANAGE = "owners.manage"
    INVITATIONS_READ = "invitations.read"
    INVITATIONS_CREATE = "invitations.create"
    INVITATIONS_REVOKE = "invitations.revoke"
    API_KEYS_READ = "api_keys.read"
    API_KEYS_CREATE = "api_keys.create"
    API_KEYS_REVOKE = "api_keys.revoke"
    AUDIT_READ = "audit.read"
    USAGE_READ = "usage.read"
    INFERENCE = "inference.use"
    CONVERSATIONS = "conversations.use"
    KNOWLEDGE_READ = "knowledge.read"
    KNOWLEDGE_WRITE = "knowledge.write"


_VIEWER = frozenset(
    {Action.ORG_READ, Action.MEMBERS_READ, Action.USAGE_READ, Action.KNOWLEDGE_READ}
)
_MEMBER = _VIEWER | {Action.INFERENCE, Action.CONVERSATIONS, Action.KNOWLEDGE_WRITE}
_ADMIN = _MEMBER | {
    Action.ORG_UPDATE,
    Action.MEMBERS_UPDATE,
    Action.MEMBERS_REMOVE,
    Action.INVITATIONS_READ,
    Action.INVITATIONS_CREATE,
    Action.INVITATIONS_REVOKE,
    Action.API_KEYS_READ,
    Action.API_KEYS_CREATE,
    Action.API_KEYS_REVOKE,
    Action.AUDIT_READ,
}
_OWNER = _ADMIN | {Action.ORG_DELETE, Action.OWNERS_MANAGE}

ROLE_PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: _OWNER,
    Role.ADMIN: frozenset(_ADMIN),
    Role.MEMBER: frozenset(_MEMBER),
    Role.VIEWER: _VIEWER,
}

# An API key acts for its organisation within its scopes; owner-only actions need a person.
SCOPE_PERMISSIONS: dict[Scope, frozenset[Action]] = {
    Scope.INFERENCE: frozenset({Action.INFERENCE}),
    Scope.CONVERSATIONS: frozenset({Action.CONVERSATIONS}),
    Scope.KNOWLEDGE: frozenset({Action.KNOWLEDGE_READ, Action.KNOWLEDGE_WRITE}),
    Scope.ADMIN: frozenset(
        _ADMIN - {Action.INFERENCE, Action.CONVERSATIONS, Action.KNOWLEDGE_WRITE}
    ),
}


def role_allows(role: Role, action: Action) -> bool:
    return action in ROLE_PERMISSIONS[role]


def scopes_allow(scopes: frozenset[Scope], action: Action) -> bool:
    return any(action in SCOPE_PERMISSIONS[s] for s in scopes)
