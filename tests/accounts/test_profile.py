"""GET and PATCH /v1/users/me."""

from __future__ import annotations

from typing import Any

import httpx

from tests.accounts.helpers import login, me
from tests.support import PASSWORD, Account, assert_error, join, register


async def _patch(
    client: httpx.AsyncClient, account: Account, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch("/v1/users/me", json=body, headers=account.headers)


async def _new_org(client: httpx.AsyncClient, account: Account, name: str) -> str:
    response = await client.post("/v1/orgs", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.text
    org_id: str = response.json()["id"]
    return org_id


async def test_patch_name(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Lee")
    response = await _patch(client, account, {"name": "  Lee Ann  "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Lee Ann"
    assert (body["id"], body["email"], body["default_org_id"]) == (
        account.user_id,
        account.email,
        account.org_id,
    )
    assert (await me(client, account.access_token)).json()["name"] == "Lee Ann"
    # A new session sees the new name too.
    assert (await login(client, account.email, PASSWORD)).json()["user"]["name"] == "Lee Ann"


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Max")
    for body in ({}, {"name": None}, {"default_org_id": None}):
        response = await _patch(client, account, body)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Max"
        assert response.json()["default_org_id"] == account.org_id


async def test_default_org_can_be_an_org_you_own(client: httpx.AsyncClient) -> None:
    account = await register(client)
    team = await _new_org(client, account, "Team")
    response = await _patch(client, account, {"default_org_id": team})
    assert response.status_code == 200, response.text
    assert response.json()["default_org_id"] == team
    assert (await me(client, account.access_token)).json()["default_org_id"] == team
    logged_in = await login(client, account.email, PASSWORD)
    assert logged_in.json()["user"]["default_org_id"] == team


async def test_default_org_can_be_an_org_you_joined(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    response = await _patch(client, member, {"default_org_id": owner.org_id, "name": "Nia"})
    assert response.status_code == 200, response.text
    assert response.json()["default_org_id"] == owner.org_id
    assert response.json()["name"] == "Nia"


async def test_default_org_must_be_one_of_yours(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Oli")
    stranger = await register(client)
    strangers_team = await _new_org(client, stranger, "Private")
    for org_id in (stranger.org_id, strangers_team, "org_doesnotexist", "not-an-org-id"):
        response = await _patch(client, account, {"default_org_id": org_id, "name": "Changed"})
        error = assert_error(response, 404, "not_found_error", "org_not_found")
        assert error["param"] == "default_org_id", (org_id, error)
        assert org_id in error["message"]
    # Nothing of the refused requests stuck, not even the name sent alongside.
    profile = (await me(client, account.access_token)).json()
    assert profile["default_org_id"] == account.org_id
    assert profile["name"] == "Oli"


async def test_default_org_of_an_org_you_left_is_refused(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    removed = await client.delete(
        f"/v1/orgs/{owner.org_id}/members/{member.user_id}", headers=owner.headers
    )
    assert removed.status_code == 204, removed.text
    response = await _patch(client, member, {"default_org_id": owner.org_id})
    assert_error(response, 404, "not_found_error", "org_not_found")


async def test_profile_body_is_validated(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Pat")
    for body, param in [
        ({"name": "n" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"default_org_id": 5}, "default_org_id"),
        ({"email": "new@example.com"}, "email"),
        ({"is_platform_admin": True}, "is_platform_admin"),
    ]:
        response = await _patch(client, account, body)
        error = assert_error(response, 422, "invalid_request_error", "validation_error")
        assert error["param"] == param, (body, error)
    profile = (await me(client, account.access_token)).json()
    assert (profile["name"], profile["email"]) == ("Pat", account.email)
    assert_error(
        await client.get("/v1/users/me"), 401, "authentication_error", "missing_credentials"
    )
    assert_error(
        await client.patch("/v1/users/me", json={"name": "x"}),
        401,
        "authentication_error",
        "missing_credentials",
    )
