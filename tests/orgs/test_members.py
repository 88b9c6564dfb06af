"""Members: listing, role changes, the last-owner rule, leaving and removal."""

from __future__ import annotations

import asyncio

import httpx

from tests.orgs.helpers import audit_events, member_roles
from tests.support import Account, assert_error, join, register


async def _set_role(
    client: httpx.AsyncClient, who: Account, org_id: str, user_id: str, role: str
) -> httpx.Response:
    return await client.patch(
        f"/v1/orgs/{org_id}/members/{user_id}", json={"role": role}, headers=who.headers
    )


async def _remove(
    client: httpx.AsyncClient, who: Account, org_id: str, user_id: str
) -> httpx.Response:
    return await client.delete(f"/v1/orgs/{org_id}/members/{user_id}", headers=who.headers)


async def test_list_members_shows_people_and_roles(client: httpx.AsyncClient) -> None:
    owner = await register(client, name="Olga")
    admin = await join(client, owner, owner.org_id, "admin")
    viewer = await join(client, owner, owner.org_id, "viewer")
    response = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=viewer.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["has_more"] is False
    rows = {m["user_id"]: m for m in body["data"]}
    assert set(rows) == {owner.user_id, admin.user_id, viewer.user_id}
    first = rows[owner.user_id]
    assert first["object"] == "organization.member"
    assert first["email"] == owner.email
    assert first["name"] == "Olga"
    assert first["role"] == "owner"
    assert first["id"].startswith("mem_")
    assert first["joined_at"]
    assert rows[admin.user_id]["role"] == "admin"
    assert rows[viewer.user_id]["role"] == "viewer"


async def test_list_members_paginates(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    for role in ("member", "member", "viewer"):
        await join(client, owner, owner.org_id, role)
    url = f"/v1/orgs/{owner.org_id}/members"
    first = (await client.get(url, params={"limit": 3}, headers=owner.headers)).json()
    assert len(first["data"]) == 3
    assert first["has_more"] is True
    assert first["last_id"] == first["data"][-1]["id"]
    rest = await client.get(
        url, params={"limit": 3, "after": first["last_id"]}, headers=owner.headers
    )
    second = rest.json()
    assert len(second["data"]) == 1
    assert second["has_more"] is False
    seen = [m["user_id"] for m in first["data"] + second["data"]]
    assert len(set(seen)) == 4
    too_many = await client.get(url, params={"limit": 1000}, headers=owner.headers)
    assert too_many.status_code in (400, 422)


async def test_change_role(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    response = await _set_role(client, owner, owner.org_id, member.user_id, "admin")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == member.user_id
    assert body["role"] == "admin"
    assert (await member_roles(client, owner, owner.org_id))[member.user_id] == "admin"
    # The new role applies at once: an admin may read invitations.
    invitations = await client.get(f"/v1/orgs/{owner.org_id}/invitations", headers=member.headers)
    assert invitations.status_code == 200, invitations.text
    listed = await client.get("/v1/orgs", headers=member.headers)
    roles = {o["id"]: o["role"] for o in listed.json()["data"]}
    assert roles[owner.org_id] == "admin"

    [event] = await audit_events(client, owner, owner.org_id, "member.role_changed")
    assert event["actor_id"] == owner.user_id
    assert event["target_type"] == "user"
    assert event["target_id"] == member.user_id
    assert event["details"] == {"from": "member", "to": "admin"}

    # Setting the same role again is a no-op: no second event.
    same = await _set_role(client, owner, owner.org_id, member.user_id, "admin")
    assert same.status_code == 200, same.text
    assert len(await audit_events(client, owner, owner.org_id, "member.role_changed")) == 1


async def test_change_role_errors(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    outsider = await register(client)
    bad_role = await _set_role(client, owner, owner.org_id, member.user_id, "superuser")
    assert bad_role.status_code in (400, 422), bad_role.text
    assert set(bad_role.json()) == {"error"}
    unknown = await _set_role(client, owner, owner.org_id, outsider.user_id, "admin")
    assert_error(unknown, 404, "not_found_error", "member_not_found")
    nobody = await _set_role(client, owner, owner.org_id, "usr_nobody", "admin")
    assert_error(nobody, 404, "not_found_error", "member_not_found")
    gone = await _remove(client, owner, owner.org_id, outsider.user_id)
    assert_error(gone, 404, "not_found_error", "member_not_found")


async def test_owner_promotes_and_the_new_owner_has_owner_powers(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    promoted = await _set_role(client, owner, owner.org_id, member.user_id, "owner")
    assert promoted.status_code == 200, promoted.text
    # The new owner may now demote the original one.
    demoted = await _set_role(client, member, owner.org_id, owner.user_id, "viewer")
    assert demoted.status_code == 200, demoted.text
    assert await member_roles(client, member, owner.org_id) == {
        owner.user_id: "viewer",
        member.user_id: "owner",
    }


async def test_the_last_owner_cannot_be_demoted_or_removed(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    admin = await join(client, owner, owner.org_id, "admin")
    for role in ("admin", "member", "viewer"):
        response = await _set_role(client, owner, owner.org_id, owner.user_id, role)
        assert_error(response, 409, "conflict_error", "last_owner")
    leave = await _remove(client, owner, owner.org_id, owner.user_id)
    assert_error(leave, 409, "conflict_error", "last_owner")
    assert await member_roles(client, owner, owner.org_id) == {
        owner.user_id: "owner",
        admin.user_id: "admin",
    }
    # Keeping the role is fine.
    same = await _set_role(client, owner, owner.org_id, owner.user_id, "owner")
    assert same.status_code == 200, same.text


async def test_with_two_owners_one_may_step_down_or_be_removed(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    second = await join(client, owner, owner.org_id, "owner")
    third = await join(client, owner, owner.org_id, "owner")
    demoted = await _set_role(client, owner, owner.org_id, owner.user_id, "admin")
    assert demoted.status_code == 200, demoted.text
    removed = await _remove(client, second, owner.org_id, third.user_id)
    assert removed.status_code == 204, removed.text
    assert await member_roles(client, second, owner.org_id) == {
        owner.user_id: "admin",
        second.user_id: "owner",
    }
    # second is the last owner now.
    last = await _set_role(client, second, owner.org_id, second.user_id, "member")
    assert_error(last, 409, "conflict_error", "last_owner")


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: httpx.AsyncClient,
) -> None:
    a = await register(client)
    b = await join(client, a, a.org_id, "owner")
    first, second = await asyncio.gather(
        _set_role(client, a, a.org_id, b.user_id, "admin"),
        _set_role(client, b, a.org_id, a.user_id, "admin"),
    )
    # One wins; the other finds it is the last owner (409), or, if it ran after the winner
    # had committed, that it is no longer an owner at all (403).
    winner, loser = (first, second) if first.status_code == 200 else (second, first)
    assert winner.status_code == 200, (first.text, second.text)
    assert loser.status_code in (403, 409), loser.text
    assert_error(
        loser,
        loser.status_code,
        "permission_error" if loser.status_code == 403 else "conflict_error",
    )
    roles = await member_roles(client, a, a.org_id)
    assert sorted(roles.values()) == ["admin", "owner"]


async def test_a_member_can_leave(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    for role in ("viewer", "member", "admin"):
        leaver = await join(client, owner, owner.org_id, role)
        # Viewers and members may not remove others, but anyone may leave.
        left = await _remove(client, leaver, owner.org_id, leaver.user_id)
        assert left.status_code == 204, (role, left.text)
        assert left.content == b""
        gone = await client.get(f"/v1/orgs/{owner.org_id}", headers=leaver.headers)
        assert_error(gone, 404, "not_found_error", "org_not_found")
        orgs = await client.get("/v1/orgs", headers=leaver.headers)
        assert [o["id"] for o in orgs.json()["data"]] == [leaver.org_id]
    assert await member_roles(client, owner, owner.org_id) == {owner.user_id: "owner"}
    events = await audit_events(client, owner, owner.org_id, "member.removed")
    assert len(events) == 3
    assert all(e["actor_id"] == e["target_id"] for e in events)


async def test_an_owner_with_a_co_owner_can_leave(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    co_owner = await join(client, owner, owner.org_id, "owner")
    left = await _remove(client, owner, owner.org_id, owner.user_id)
    assert left.status_code == 204, left.text
    assert await member_roles(client, co_owner, owner.org_id) == {co_owner.user_id: "owner"}


async def test_removing_a_member_takes_away_access_at_once(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    admin = await join(client, owner, owner.org_id, "admin")
    member = await join(client, owner, owner.org_id, "member")
    before = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=member.headers)
    assert before.status_code == 200

    removed = await _remove(client, admin, owner.org_id, member.user_id)
    assert removed.status_code == 204, removed.text

    for path in ("", "/members"):
        after = await client.get(f"/v1/orgs/{owner.org_id}{path}", headers=member.headers)
        assert_error(after, 404, "not_found_error", "org_not_found")
    keys = await client.get("/v1/api-keys", headers=member.in_org(owner.org_id))
    assert_error(keys, 404, "not_found_error", "org_not_found")
    # Removing again: no such member.
    again = await _remove(client, admin, owner.org_id, member.user_id)
    assert_error(again, 404, "not_found_error", "member_not_found")

    [event] = await audit_events(client, owner, owner.org_id, "member.removed")
    assert event["actor_id"] == admin.user_id
    assert event["target_type"] == "user"
    assert event["target_id"] == member.user_id


async def test_removed_members_default_org_moves_elsewhere(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    chosen = await client.patch(
        "/v1/users/me", json={"default_org_id": owner.org_id}, headers=member.headers
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["default_org_id"] == owner.org_id

    removed = await _remove(client, owner, owner.org_id, member.user_id)
    assert removed.status_code == 204, removed.text

    me = await client.get("/v1/users/me", headers=member.headers)
    assert me.json()["default_org_id"] == member.org_id  # back to their personal org
    # Header-less org routes now act in that organisation.
    keys = await client.get("/v1/api-keys", headers=member.headers)
    assert keys.status_code == 200, keys.text


async def test_default_org_is_cleared_when_no_org_remains_and_set_again_on_accept(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    # Hand the member's personal org to someone else, then leave it.
    heir = await join(client, member, member.org_id, "owner")
    left = await _remove(client, member, member.org_id, member.user_id)
    assert left.status_code == 204, left.text
    me = await client.get("/v1/users/me", headers=member.headers)
    assert me.json()["default_org_id"] == owner.org_id  # the one org left
    assert await member_roles(client, heir, member.org_id) == {heir.user_id: "owner"}

    removed = await _remove(client, owner, owner.org_id, member.user_id)
    assert removed.status_code == 204, removed.text
    me = await client.get("/v1/users/me", headers=member.headers)
    assert me.json()["default_org_id"] is None
    orphan = await client.get("/v1/api-keys", headers=member.headers)
    assert_error(orphan, 400, "invalid_request_error", "organization_required")
    assert (await client.get("/v1/orgs", headers=member.headers)).json()["data"] == []

    await join(client, owner, owner.org_id, "viewer", member=member)
    me = await client.get("/v1/users/me", headers=member.headers)
    assert me.json()["default_org_id"] == owner.org_id
