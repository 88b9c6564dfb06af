"""Invitations: create, list, revoke, expire, accept and decline, with their audit trail."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.orgs.helpers import audit_events, log_in_again
from tests.support import Account, FakeClock, assert_error, join, register, unique_email

WEEK_S = 7 * 24 * 3600


async def _invite(
    client: httpx.AsyncClient, who: Account, org_id: str, email: str, role: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"email": email}
    if role is not None:
        body["role"] = role
    return await client.post(f"/v1/orgs/{org_id}/invitations", json=body, headers=who.headers)


async def _invited(
    client: httpx.AsyncClient, who: Account, org_id: str, email: str, role: str | None = None
) -> dict[str, Any]:
    response = await _invite(client, who, org_id, email, role)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _accept(client: httpx.AsyncClient, who: Account, token: str) -> httpx.Response:
    return await client.post("/v1/invitations/accept", json={"token": token}, headers=who.headers)


async def _decline(client: httpx.AsyncClient, who: Account, token: str) -> httpx.Response:
    return await client.post("/v1/invitations/decline", json={"token": token}, headers=who.headers)


async def _listed(
    client: httpx.AsyncClient, who: Account, org_id: str, status: str | None = None
) -> dict[str, str]:
    params = {"status": status} if status else {}
    response = await client.get(
        f"/v1/orgs/{org_id}/invitations", params=params, headers=who.headers
    )
    assert response.status_code == 200, response.text
    return {i["id"]: i["status"] for i in response.json()["data"]}


async def test_create_invitation(client: httpx.AsyncClient, clock: FakeClock) -> None:
    owner = await register(client)
    email = unique_email("invitee")
    body = await _invited(client, owner, owner.org_id, email)
    assert body["object"] == "organization.invitation"
    assert body["id"].startswith("inv_")
    assert body["org_id"] == owner.org_id
    assert body["email"] == email
    assert body["role"] == "member"  # the default
    assert body["status"] == "pending"
    assert body["invited_by"] == owner.user_id
    assert body["token"]
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}" == "http://parley.test"  # public_url
    assert parse_qs(url.query)["token"] == [body["token"]]
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.timestamp() == clock.now.timestamp() + WEEK_S  # by the app's clock

    [event] = await audit_events(client, owner, owner.org_id, "invitation.created")
    assert event["actor_id"] == owner.user_id
    assert event["target_type"] == "invitation"
    assert event["target_id"] == body["id"]
    assert event["details"] == {"email": email, "role": "member"}

    # The token is shown once: the list does not carry it.
    listed = await client.get(f"/v1/orgs/{owner.org_id}/invitations", headers=owner.headers)
    [item] = listed.json()["data"]
    assert "token" not in item
    assert "url" not in item
    assert item["id"] == body["id"]


async def test_invitation_emails_are_normalised(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    email = unique_email("mixed")
    body = await _invited(client, owner, owner.org_id, "  " + email.upper(), "viewer")
    assert body["email"] == email
    invitee = await register(client, email=email.upper())
    mine = await client.get("/v1/invitations", headers=invitee.headers)
    assert [i["id"] for i in mine.json()["data"]] == [body["id"]]
    accepted = await _accept(client, invitee, body["token"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["organization"]["role"] == "viewer"


async def test_create_invitation_validation(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    for body in (
        {"email": "not-an-email"},
        {"email": unique_email(), "role": "king"},
        {},
        {"email": unique_email(), "extra": True},
    ):
        response = await client.post(
            f"/v1/orgs/{owner.org_id}/invitations", json=body, headers=owner.headers
        )
        assert response.status_code in (400, 422), (body, response.text)
        assert set(response.json()) == {"error"}
    assert await _listed(client, owner, owner.org_id) == {}


async def test_duplicate_pending_invitation_is_a_conflict(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    email = unique_email()
    first = await _invited(client, owner, owner.org_id, email)
    again = await _invite(client, owner, owner.org_id, email, "admin")
    error = assert_error(again, 409, "conflict_error", "invitation_pending")
    assert first["id"] in error["message"]
    # Another organisation may invite the same person.
    other = await register(client)
    assert (await _invite(client, other, other.org_id, email)).status_code == 201
    # Once revoked, a new invitation may be sent.
    revoked = await client.delete(
        f"/v1/orgs/{owner.org_id}/invitations/{first['id']}", headers=owner.headers
    )
    assert revoked.status_code == 200, revoked.text
    assert (await _invite(client, owner, owner.org_id, email)).status_code == 201


async def test_inviting_a_member_is_a_conflict(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    response = await _invite(client, owner, owner.org_id, member.email.upper())
    assert_error(response, 409, "conflict_error", "already_member")
    self_invite = await _invite(client, owner, owner.org_id, owner.email)
    assert_error(self_invite, 409, "conflict_error", "already_member")


async def test_list_invitations_with_status_filter(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    owner = await register(client)
    # One that will expire: sent first, a week and a bit before the others are looked at.
    expired = await _invited(client, owner, owner.org_id, unique_email())
    clock.advance(days=7, minutes=1)
    await log_in_again(client, owner)
    pending = await _invited(client, owner, owner.org_id, unique_email())
    revoked = await _invited(client, owner, owner.org_id, unique_email())
    await client.delete(
        f"/v1/orgs/{owner.org_id}/invitations/{revoked['id']}", headers=owner.headers
    )
    accepted_account = await register(client)
    accepted = await _invited(client, owner, owner.org_id, accepted_account.email)
    assert (await _accept(client, accepted_account, accepted["token"])).status_code == 200
    declined_account = await register(client)
    declined = await _invited(client, owner, owner.org_id, declined_account.email)
    assert (await _decline(client, declined_account, declined["token"])).status_code == 200

    everything = await _listed(client, owner, owner.org_id)
    assert everything == {
        expired["id"]: "expired",
        pending["id"]: "pending",
        revoked["id"]: "revoked",
        accepted["id"]: "accepted",
        declined["id"]: "declined",
    }
    for status in ("pending", "accepted", "declined", "revoked", "expired"):
        only = await _listed(client, owner, owner.org_id, status)
        assert only == {i: s for i, s in everything.items() if s == status}, status
    bad = await client.get(
        f"/v1/orgs/{owner.org_id}/invitations", params={"status": "lost"}, headers=owner.headers
    )
    assert bad.status_code in (400, 422)
    # Newest first.
    response = await client.get(f"/v1/orgs/{owner.org_id}/invitations", headers=owner.headers)
    ids = [i["id"] for i in response.json()["data"]]
    assert ids == sorted(ids, reverse=True)
    page = await client.get(
        f"/v1/orgs/{owner.org_id}/invitations", params={"limit": 2}, headers=owner.headers
    )
    assert page.json()["has_more"] is True
    assert [i["id"] for i in page.json()["data"]] == ids[:2]


async def test_revoke(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    admin = await join(client, owner, owner.org_id, "admin")
    invitee = await register(client)
    invitation = await _invited(client, owner, owner.org_id, invitee.email)
    revoked = await client.delete(
        f"/v1/orgs/{owner.org_id}/invitations/{invitation['id']}", headers=admin.headers
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"

    accept = await _accept(client, invitee, invitation["token"])
    assert_error(accept, 409, "conflict_error", "invitation_not_pending")
    decline = await _decline(client, invitee, invitation["token"])
    assert_error(decline, 409, "conflict_error", "invitation_not_pending")
    again = await client.delete(
        f"/v1/orgs/{owner.org_id}/invitations/{invitation['id']}", headers=owner.headers
    )
    assert_error(again, 409, "conflict_error", "invitation_not_pending")
    unknown = await client.delete(
        f"/v1/orgs/{owner.org_id}/invitations/inv_unknown", headers=owner.headers
    )
    assert_error(unknown, 404, "not_found_error", "invitation_not_found")
    mine = await client.get("/v1/invitations", headers=invitee.headers)
    assert mine.json()["data"] == []

    [event] = await audit_events(client, owner, owner.org_id, "invitation.revoked")
    assert event["actor_id"] == admin.user_id
    assert event["target_id"] == invitation["id"]


async def test_an_org_cannot_revoke_another_orgs_invitation(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    other = await register(client)
    invitation = await _invited(client, owner, owner.org_id, unique_email())
    response = await client.delete(
        f"/v1/orgs/{other.org_id}/invitations/{invitation['id']}", headers=other.headers
    )
    assert_error(response, 404, "not_found_error", "invitation_not_found")
    assert await _listed(client, owner, owner.org_id) == {invitation["id"]: "pending"}


async def test_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    owner = await register(client)
    invitee = await register(client)
    invitation = await _invited(client, owner, owner.org_id, invitee.email)
    clock.advance(days=6, hours=23)
    await log_in_again(client, owner)
    assert await _listed(client, owner, owner.org_id, "pending") == {invitation["id"]: "pending"}
    clock.advance(hours=2)  # a week and an hour later
    await log_in_again(client, owner, invitee)
    assert await _listed(client, owner, owner.org_id) == {invitation["id"]: "expired"}
    assert await _listed(client, owner, owner.org_id, "pending") == {}
    mine = await client.get("/v1/invitations", headers=invitee.headers)
    assert mine.json()["data"] == []

    accept = await _accept(client, invitee, invitation["token"])
    error = assert_error(accept, 409, "conflict_error", "invitation_not_pending")
    assert "expired" in error["message"]
    decline = await _decline(client, invitee, invitation["token"])
    assert_error(decline, 409, "conflict_error", "invitation_not_pending")
    # Re-inviting replaces the expired one without a conflict.
    fresh = await _invited(client, owner, owner.org_id, invitee.email, "admin")
    listed = await _listed(client, owner, owner.org_id)
    assert listed == {invitation["id"]: "revoked", fresh["id"]: "pending"}
    accepted = await _accept(client, invitee, fresh["token"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["organization"]["role"] == "admin"


async def test_accept(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    invitee = await register(client)
    invitation = await _invited(client, owner, owner.org_id, invitee.email, "admin")

    pending = await client.get("/v1/invitations", headers=invitee.headers)
    assert pending.status_code == 200, pending.text
    [shown] = pending.json()["data"]
    assert shown["id"] == invitation["id"]
    assert shown["org_id"] == owner.org_id
    assert shown["role"] == "admin"
    assert shown["status"] == "pending"
    assert "token" not in shown

    accepted = await _accept(client, invitee, invitation["token"])
    assert accepted.status_code == 200, accepted.text
    org = accepted.json()["organization"]
    assert org["id"] == owner.org_id
    assert org["role"] == "admin"

    members = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=owner.headers)
    roles = {m["user_id"]: m["role"] for m in members.json()["data"]}
    assert roles == {owner.user_id: "owner", invitee.user_id: "admin"}
    orgs = await client.get("/v1/orgs", headers=invitee.headers)
    assert {o["id"]: o["role"] for o in orgs.json()["data"]} == {
        invitee.org_id: "owner",
        owner.org_id: "admin",
    }
    # Their default organisation is unchanged: they had one.
    me = await client.get("/v1/users/me", headers=invitee.headers)
    assert me.json()["default_org_id"] == invitee.org_id
    assert (await client.get("/v1/invitations", headers=invitee.headers)).json()["data"] == []
    assert await _listed(client, owner, owner.org_id) == {invitation["id"]: "accepted"}

    twice = await _accept(client, invitee, invitation["token"])
    assert_error(twice, 409, "conflict_error", "invitation_not_pending")

    [event] = await audit_events(client, owner, owner.org_id, "invitation.accepted")
    assert event["actor_id"] == invitee.user_id
    assert event["target_id"] == invitation["id"]
    # The invitee's own personal org saw nothing of it.
    own = await audit_events(client, invitee, invitee.org_id, "invitation.accepted")
    assert own == []


async def test_accept_by_someone_else_is_not_found(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    invitee = await register(client)
    intruder = await register(client)
    invitation = await _invited(client, owner, owner.org_id, invitee.email)
    for call in (_accept, _decline):
        response = await call(client, intruder, invitation["token"])
        assert_error(response, 404, "not_found_error", "invitation_not_found")
    made_up = await _accept(client, invitee, "inv_" + "x" * 40)
    assert_error(made_up, 404, "not_found_error", "invitation_not_found")
    # The invitation is untouched and still works for the right person.
    assert (await _accept(client, invitee, invitation["token"])).status_code == 200
    members = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=owner.headers)
    assert intruder.user_id not in {m["user_id"] for m in members.json()["data"]}


async def test_accept_and_decline_need_a_user(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    invitation = await _invited(client, owner, owner.org_id, unique_email())
    anonymous = await client.post("/v1/invitations/accept", json={"token": invitation["token"]})
    assert_error(anonymous, 401, "authentication_error")
    assert_error(await client.get("/v1/invitations"), 401, "authentication_error")
    empty = await client.post("/v1/invitations/accept", json={"token": ""}, headers=owner.headers)
    assert empty.status_code in (400, 422)


async def test_decline(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    invitee = await register(client)
    invitation = await _invited(client, owner, owner.org_id, invitee.email)
    declined = await _decline(client, invitee, invitation["token"])
    assert declined.status_code == 200, declined.text
    assert declined.json()["id"] == invitation["id"]
    assert declined.json()["status"] == "declined"

    accept = await _accept(client, invitee, invitation["token"])
    assert_error(accept, 409, "conflict_error", "invitation_not_pending")
    members = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=owner.headers)
    assert invitee.user_id not in {m["user_id"] for m in members.json()["data"]}
    assert (await client.get("/v1/invitations", headers=invitee.headers)).json()["data"] == []

    [event] = await audit_events(client, owner, owner.org_id, "invitation.declined")
    assert event["actor_id"] == invitee.user_id
    assert event["target_id"] == invitation["id"]
    # A declined invitation does not block a new one.
    assert (await _invite(client, owner, owner.org_id, invitee.email)).status_code == 201


async def test_pending_invitations_for_an_email_not_yet_registered(
    client: httpx.AsyncClient,
) -> None:
    first = await register(client)
    second = await register(client)
    email = unique_email("newcomer")
    a = await _invited(client, first, first.org_id, email, "viewer")
    b = await _invited(client, second, second.org_id, email, "admin")
    await _invited(client, second, second.org_id, unique_email("someone-else"))

    newcomer = await register(client, email=email)
    mine = await client.get("/v1/invitations", headers=newcomer.headers)
    assert mine.status_code == 200, mine.text
    shown = {i["id"]: (i["org_id"], i["role"]) for i in mine.json()["data"]}
    assert shown == {a["id"]: (first.org_id, "viewer"), b["id"]: (second.org_id, "admin")}


async def test_a_member_removed_after_accepting_can_be_invited_again(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    removed = await client.delete(
        f"/v1/orgs/{owner.org_id}/members/{member.user_id}", headers=owner.headers
    )
    assert removed.status_code == 204
    await join(client, owner, owner.org_id, "viewer", member=member)
    members = await client.get(f"/v1/orgs/{owner.org_id}/members", headers=owner.headers)
    assert {m["user_id"]: m["role"] for m in members.json()["data"]}[member.user_id] == "viewer"


async def test_concurrent_invitations_to_one_email_send_one(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    email = unique_email("race")
    responses = await asyncio.gather(
        *(_invite(client, owner, owner.org_id, email) for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "conflict_error", "invitation_pending")
    assert list((await _listed(client, owner, owner.org_id)).values()) == ["pending"]
