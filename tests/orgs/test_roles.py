"""The permission table, walked over HTTP: every role and every API-key scope against every
action that has a route, with the expected outcome read from `parley.orgs.roles` itself."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from parley.orgs.roles import (
    ROLE_PERMISSIONS,
    SCOPE_PERMISSIONS,
    Action,
    Role,
    Scope,
    role_allows,
    scopes_allow,
)
from tests.support import Account, assert_error, bearer, create_key, join, register, unique_email


@dataclass
class Setting:
    """One organisation, its owner, and the caller whose permissions are under test."""

    client: httpx.AsyncClient
    owner: Account
    org_id: str
    headers: dict[str, str]  # the caller's credentials, acting in org_id


Perform = Callable[[Setting], Awaitable[httpx.Response]]


async def _target(s: Setting, role: str = "viewer") -> str:
    """A fresh member for the caller to act upon."""
    member = await join(s.client, s.owner, s.org_id, role)
    return member.user_id


async def _org_read(s: Setting) -> httpx.Response:
    return await s.client.get(f"/v1/orgs/{s.org_id}", headers=s.headers)


async def _org_update(s: Setting) -> httpx.Response:
    return await s.client.patch(f"/v1/orgs/{s.org_id}", json={"name": "Renamed"}, headers=s.headers)


async def _members_read(s: Setting) -> httpx.Response:
    return await s.client.get(f"/v1/orgs/{s.org_id}/members", headers=s.headers)


async def _members_update(s: Setting) -> httpx.Response:
    target = await _target(s, "viewer")
    return await s.client.patch(
        f"/v1/orgs/{s.org_id}/members/{target}", json={"role": "member"}, headers=s.headers
    )


async def _members_remove(s: Setting) -> httpx.Response:
    target = await _target(s, "viewer")
    return await s.client.delete(f"/v1/orgs/{s.org_id}/members/{target}", headers=s.headers)


async def _owners_manage(s: Setting) -> httpx.Response:
    target = await _target(s, "member")
    return await s.client.patch(
        f"/v1/orgs/{s.org_id}/members/{target}", json={"role": "owner"}, headers=s.headers
    )


async def _invitations_read(s: Setting) -> httpx.Response:
    return await s.client.get(f"/v1/orgs/{s.org_id}/invitations", headers=s.headers)


async def _invitations_create(s: Setting) -> httpx.Response:
    return await s.client.post(
        f"/v1/orgs/{s.org_id}/invitations",
        json={"email": unique_email("invitee"), "role": "member"},
        headers=s.headers,
    )


async def _invitations_revoke(s: Setting) -> httpx.Response:
    created = await s.client.post(
        f"/v1/orgs/{s.org_id}/invitations",
        json={"email": unique_email("invitee")},
        headers=s.owner.headers,
    )
    assert created.status_code == 201, created.text
    return await s.client.delete(
        f"/v1/orgs/{s.org_id}/invitations/{created.json()['id']}", headers=s.headers
    )


async def _api_keys_read(s: Setting) -> httpx.Response:
    return await s.client.get("/v1/api-keys", headers=s.headers)


async def _api_keys_create(s: Setting) -> httpx.Response:
    # The admin scope: the one scope every caller allowed to create keys holds itself (a key
    # may only create keys within its own scopes, tested in tests/keys).
    return await s.client.post(
        "/v1/api-keys", json={"name": "made by caller", "scopes": ["admin"]}, headers=s.headers
    )


async def _api_keys_revoke(s: Setting) -> httpx.Response:
    key = await create_key(s.client, s.owner, org_id=s.org_id)
    return await s.client.delete(f"/v1/api-keys/{key['id']}", headers=s.headers)


async def _audit_read(s: Setting) -> httpx.Response:
    return await s.client.get(f"/v1/orgs/{s.org_id}/audit-log", headers=s.headers)


# Every action with an HTTP route today, and the call that exercises it.
WALKED: dict[Action, Perform] = {
    Action.ORG_READ: _org_read,
    Action.ORG_UPDATE: _org_update,
    Action.MEMBERS_READ: _members_read,
    Action.MEMBERS_UPDATE: _members_update,
    Action.MEMBERS_REMOVE: _members_remove,
    Action.OWNERS_MANAGE: _owners_manage,
    Action.INVITATIONS_READ: _invitations_read,
    Action.INVITATIONS_CREATE: _invitations_create,
    Action.INVITATIONS_REVOKE: _invitations_revoke,
    Action.API_KEYS_READ: _api_keys_read,
    Action.API_KEYS_CREATE: _api_keys_create,
    Action.API_KEYS_REVOKE: _api_keys_revoke,
    Action.AUDIT_READ: _audit_read,
}

# Actions in the table with no route yet. When one gets a route, move it into WALKED.
NO_ROUTE_YET: frozenset[Action] = frozenset(
    {
        Action.ORG_DELETE,
        Action.USAGE_READ,
        Action.INFERENCE,
        Action.CONVERSATIONS,
        Action.KNOWLEDGE_READ,
        Action.KNOWLEDGE_WRITE,
    }
)


def test_every_action_is_walked_or_declared_routeless() -> None:
    """A new Action added to the enum without a test here fails the suite."""
    assert set(WALKED).isdisjoint(NO_ROUTE_YET)
    missing = set(Action) - set(WALKED) - NO_ROUTE_YET
    assert not missing, f"Actions neither tested over HTTP nor listed as routeless: {missing}"


def test_the_table_covers_every_role_and_scope() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert set(SCOPE_PERMISSIONS) == set(Scope)


def test_org_delete_has_no_route_yet(app: FastAPI) -> None:
    """org.delete is declared routeless above; this notices when DELETE /v1/orgs/{id} lands."""
    org_deletes = [
        r
        for r in app.routes
        if isinstance(r, APIRoute)
        and r.path == "/v1/orgs/{org_id}"
        and "DELETE" in (r.methods or set())
    ]
    assert not org_deletes, "org.delete now has a route: move it from NO_ROUTE_YET to WALKED"


def _outcome_error(response: httpx.Response, allowed: bool) -> str | None:
    """None when the response is what the table says, else a description of the mismatch."""
    if allowed:
        if 200 <= response.status_code < 300:
            return None
        return f"expected 2xx, got {response.status_code} {response.text}"
    if response.status_code == 403 and response.json()["error"]["type"] == "permission_error":
        assert_error(response, 403, "permission_error")  # and the full envelope
        return None
    return f"expected 403 permission_error, got {response.status_code} {response.text}"


async def _team(client: httpx.AsyncClient) -> tuple[Account, str]:
    owner = await register(client)
    created = await client.post("/v1/orgs", json={"name": "Matrix"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    return owner, str(created.json()["id"])


# Each test walks one action for every role (or scope) in one organisation: a fresh app per
# role x action would cost more in set-up than the calls themselves. Mismatches are gathered
# so a failure names every (role, action) pair that disagrees with the table.


@pytest.mark.parametrize("action", list(WALKED), ids=str)
async def test_role_matrix(client: httpx.AsyncClient, action: Action) -> None:
    owner, org_id = await _team(client)
    callers = {role: await join(client, owner, org_id, role.value) for role in Role}
    mismatches: dict[str, str] = {}
    for role, caller in callers.items():
        allowed = role_allows(role, action)
        assert allowed == (action in ROLE_PERMISSIONS[role])
        response = await WALKED[action](Setting(client, owner, org_id, caller.in_org(org_id)))
        if (problem := _outcome_error(response, allowed)) is not None:
            mismatches[f"{role} x {action}"] = problem
    assert not mismatches, mismatches


@pytest.mark.parametrize("action", list(WALKED), ids=str)
async def test_scope_matrix(client: httpx.AsyncClient, action: Action) -> None:
    owner, org_id = await _team(client)
    keys = {s: await create_key(client, owner, scopes=[s.value], org_id=org_id) for s in Scope}
    mismatches: dict[str, str] = {}
    for scope, key in keys.items():
        allowed = scopes_allow(frozenset({scope}), action)
        assert allowed == (action in SCOPE_PERMISSIONS[scope])
        response = await WALKED[action](Setting(client, owner, org_id, bearer(key["key"])))
        if (problem := _outcome_error(response, allowed)) is not None:
            mismatches[f"scope {scope} x {action}"] = problem
    assert not mismatches, mismatches


# Hard-coded facts, so a wrong edit of the table itself is caught too.


def test_table_facts() -> None:
    assert not role_allows(Role.VIEWER, Action.INVITATIONS_CREATE)
    assert not role_allows(Role.ADMIN, Action.OWNERS_MANAGE)
    assert not role_allows(Role.MEMBER, Action.AUDIT_READ)
    assert role_allows(Role.OWNER, Action.OWNERS_MANAGE)
    assert role_allows(Role.ADMIN, Action.INVITATIONS_CREATE)
    assert role_allows(Role.VIEWER, Action.ORG_READ)
    assert not role_allows(Role.VIEWER, Action.INFERENCE)
    # Each role can do everything the role below it can.
    order = [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]
    for lower, higher in itertools.pairwise(order):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher], (lower, higher)
    # Owner-only powers need a person: no key scope grants them.
    for scope in Scope:
        assert Action.OWNERS_MANAGE not in SCOPE_PERMISSIONS[scope]
        assert Action.ORG_DELETE not in SCOPE_PERMISSIONS[scope]
    assert SCOPE_PERMISSIONS[Scope.INFERENCE] == {Action.INFERENCE}
    assert not scopes_allow(frozenset(), Action.ORG_READ)


async def test_viewer_cannot_invite(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    viewer = await join(client, owner, owner.org_id, "viewer")
    response = await client.post(
        f"/v1/orgs/{owner.org_id}/invitations",
        json={"email": unique_email()},
        headers=viewer.headers,
    )
    assert_error(response, 403, "permission_error", "insufficient_permissions")


async def test_admin_cannot_make_or_invite_an_owner(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    admin = await join(client, owner, owner.org_id, "admin")
    member = await join(client, owner, owner.org_id, "member")
    promote = await client.patch(
        f"/v1/orgs/{owner.org_id}/members/{member.user_id}",
        json={"role": "owner"},
        headers=admin.headers,
    )
    assert_error(promote, 403, "permission_error", "insufficient_permissions")
    invite = await client.post(
        f"/v1/orgs/{owner.org_id}/invitations",
        json={"email": unique_email(), "role": "owner"},
        headers=admin.headers,
    )
    assert_error(invite, 403, "permission_error", "insufficient_permissions")
    # Nor demote or remove an owner, nor promote themselves.
    demote = await client.patch(
        f"/v1/orgs/{owner.org_id}/members/{owner.user_id}",
        json={"role": "admin"},
        headers=admin.headers,
    )
    assert_error(demote, 403, "permission_error")
    remove = await client.delete(
        f"/v1/orgs/{owner.org_id}/members/{owner.user_id}", headers=admin.headers
    )
    assert_error(remove, 403, "permission_error")
    self_promote = await client.patch(
        f"/v1/orgs/{owner.org_id}/members/{admin.user_id}",
        json={"role": "owner"},
        headers=admin.headers,
    )
    assert_error(self_promote, 403, "permission_error")
    members = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=owner.headers)
    roles = {m["user_id"]: m["role"] for m in members.json()["data"]}
    assert roles == {owner.user_id: "owner", admin.user_id: "admin", member.user_id: "member"}


async def test_member_cannot_read_audit_log(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    response = await client.get(f"/v1/orgs/{owner.org_id}/audit-log", headers=member.headers)
    assert_error(response, 403, "permission_error", "insufficient_permissions")


async def test_admin_key_cannot_manage_owners(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    key = await create_key(client, owner, scopes=["admin"])
    promote = await client.patch(
        f"/v1/orgs/{owner.org_id}/members/{member.user_id}",
        json={"role": "owner"},
        headers=bearer(key["key"]),
    )
    assert_error(promote, 403, "permission_error")
    remove_owner = await client.delete(
        f"/v1/orgs/{owner.org_id}/members/{owner.user_id}", headers=bearer(key["key"])
    )
    assert_error(remove_owner, 403, "permission_error")


async def test_key_of_another_org_gets_404_not_403(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    other = await register(client)
    key = await create_key(client, other, scopes=["admin"])
    for path in ("", "/members", "/invitations", "/audit-log"):
        response = await client.get(f"/v1/orgs/{owner.org_id}{path}", headers=bearer(key["key"]))
        assert_error(response, 404, "not_found_error", "org_not_found")
    # Nor may it pick another organisation with the header.
    keys = await client.get(
        "/v1/api-keys", headers={**bearer(key["key"]), "Parley-Organization": owner.org_id}
    )
    assert_error(keys, 404, "not_found_error")
