"""Organisations: create, list with the caller's role, read, rename; strangers see nothing."""

from __future__ import annotations

import httpx

from tests.support import assert_error, bearer, create_key, join, register


async def test_register_makes_a_personal_org_owned_by_the_user(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Ada")
    response = await client.get("/v1/orgs", headers=account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["has_more"] is False
    [org] = body["data"]
    assert org["id"] == account.org_id
    assert org["id"].startswith("org_")
    assert org["object"] == "organization"
    assert org["personal"] is True
    assert org["role"] == "owner"
    assert body["first_id"] == body["last_id"] == account.org_id


async def test_create_org_makes_the_caller_its_owner(client: httpx.AsyncClient) -> None:
    account = await register(client)
    created = await client.post("/v1/orgs", json={"name": "  Acme  "}, headers=account.headers)
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["name"] == "Acme"
    assert org["personal"] is False
    assert org["role"] == "owner"

    listed = await client.get("/v1/orgs", headers=account.headers)
    by_id = {o["id"]: o for o in listed.json()["data"]}
    assert set(by_id) == {account.org_id, org["id"]}
    assert by_id[org["id"]]["role"] == "owner"

    members = await client.get(f"/v1/orgs/{org['id']}/members", headers=account.headers)
    assert [(m["user_id"], m["role"]) for m in members.json()["data"]] == [
        (account.user_id, "owner")
    ]
    # The default organisation stays where it was.
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.json()["default_org_id"] == account.org_id


async def test_create_org_validates_the_name(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for body in ({"name": ""}, {}, {"name": "x" * 201}, {"name": "ok", "extra": 1}):
        response = await client.post("/v1/orgs", json=body, headers=account.headers)
        assert response.status_code in (400, 422), (body, response.text)
        assert set(response.json()) == {"error"}
    blank = await client.post("/v1/orgs", json={"name": "   "}, headers=account.headers)
    assert_error(blank, 400, "invalid_request_error")


async def test_orgs_need_credentials(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/orgs"), 401, "authentication_error")
    assert_error(await client.post("/v1/orgs", json={"name": "x"}), 401, "authentication_error")


async def test_an_api_key_cannot_create_orgs_and_lists_only_its_own(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    await client.post("/v1/orgs", json={"name": "Second"}, headers=account.headers)
    key = await create_key(client, account, scopes=["admin"])
    created = await client.post("/v1/orgs", json={"name": "By key"}, headers=bearer(key["key"]))
    assert_error(created, 403, "permission_error", "user_token_required")
    listed = await client.get("/v1/orgs", headers=bearer(key["key"]))
    assert listed.status_code == 200, listed.text
    assert [o["id"] for o in listed.json()["data"]] == [account.org_id]
    assert listed.json()["data"][0]["role"] is None


async def test_get_and_rename_an_org(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    viewer = await join(client, owner, owner.org_id, "viewer")
    got = await client.get(f"/v1/orgs/{owner.org_id}", headers=viewer.headers)
    assert got.status_code == 200, got.text
    assert got.json()["role"] == "viewer"

    renamed = await client.patch(
        f"/v1/orgs/{owner.org_id}", json={"name": " New name "}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "New name"
    assert renamed.json()["role"] == "owner"
    again = await client.get(f"/v1/orgs/{owner.org_id}", headers=viewer.headers)
    assert again.json()["name"] == "New name"

    blank = await client.patch(
        f"/v1/orgs/{owner.org_id}", json={"name": "  "}, headers=owner.headers
    )
    assert_error(blank, 400, "invalid_request_error")

    log = await client.get(
        f"/v1/orgs/{owner.org_id}/audit-log",
        params={"action": "org.updated"},
        headers=owner.headers,
    )
    [event] = log.json()["data"]
    assert event["actor_id"] == owner.user_id
    assert event["target_id"] == owner.org_id


async def test_a_non_member_gets_404_on_every_org_route(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    stranger = await register(client)
    org = f"/v1/orgs/{owner.org_id}"
    invite = await client.post(
        f"{org}/invitations", json={"email": "someone@example.com"}, headers=owner.headers
    )
    invitation_id = invite.json()["id"]
    calls = [
        ("GET", org, None),
        ("PATCH", org, {"name": "Mine now"}),
        ("GET", f"{org}/members", None),
        ("PATCH", f"{org}/members/{member.user_id}", {"role": "viewer"}),
        ("DELETE", f"{org}/members/{member.user_id}", None),
        ("DELETE", f"{org}/members/{stranger.user_id}", None),
        ("GET", f"{org}/invitations", None),
        ("POST", f"{org}/invitations", {"email": "x@example.com"}),
        ("DELETE", f"{org}/invitations/{invitation_id}", None),
        ("GET", f"{org}/audit-log", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=stranger.headers)
        error = assert_error(response, 404, "not_found_error", "org_not_found")
        assert owner.org_id in error["message"]
    # An unknown organisation looks the same as someone else's.
    unknown = await client.get("/v1/orgs/org_doesnotexist", headers=stranger.headers)
    assert_error(unknown, 404, "not_found_error", "org_not_found")
    # The same for the header-selected routes.
    keys = await client.get("/v1/api-keys", headers=stranger.in_org(owner.org_id))
    assert_error(keys, 404, "not_found_error", "org_not_found")
    # Nothing changed.
    members = await client.get(f"{org}/members", headers=owner.headers)
    assert {m["user_id"]: m["role"] for m in members.json()["data"]} == {
        owner.user_id: "owner",
        member.user_id: "member",
    }
    got = await client.get(org, headers=owner.headers)
    assert got.json()["name"] != "Mine now"


async def test_bad_organization_header_is_a_400(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    response = await client.get(
        "/v1/api-keys", headers={**owner.headers, "Parley-Organization": "not-an-org"}
    )
    assert_error(response, 400, "invalid_request_error", "invalid_organization")
