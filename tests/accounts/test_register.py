"""POST /v1/auth/register: the account, its personal organisation, and every way to get it wrong."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from parley.config import Settings
from tests.accounts.helpers import login, me, refresh
from tests.support import PASSWORD, assert_error, bearer, register, unique_email


async def test_register_returns_working_tokens_and_the_user(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    email = unique_email("ann")
    response = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ann"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_s
    assert body["refresh_token_expires_in"] == settings.refresh_token_ttl_s
    assert body["refresh_token"].startswith("rt_")
    assert body["access_token"] != body["refresh_token"]
    user = body["user"]
    assert user["id"].startswith("usr_")
    assert user["email"] == email
    assert user["name"] == "Ann"
    assert user["default_org_id"].startswith("org_")
    assert datetime.fromisoformat(user["created_at"]).utcoffset() is not None

    profile = await me(client, body["access_token"])
    assert profile.status_code == 200, profile.text
    assert profile.json()["id"] == user["id"]
    assert profile.json()["email"] == email

    rotated = await refresh(client, body["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["user"]["id"] == user["id"]

    logged_in = await login(client, email, PASSWORD)
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["user"]["id"] == user["id"]


async def test_register_creates_a_personal_org_owned_by_the_user(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client, name="Bea")
    response = await client.get("/v1/orgs", headers=account.headers)
    assert response.status_code == 200, response.text
    orgs = response.json()["data"]
    assert len(orgs) == 1, orgs
    org = orgs[0]
    assert org["id"] == account.org_id
    assert org["role"] == "owner"
    assert org["personal"] is True
    assert org["name"] == "Bea's organisation"

    members = await client.get(f"/v1/orgs/{account.org_id}/members", headers=account.headers)
    assert members.status_code == 200, members.text
    assert [(m["user_id"], m["role"]) for m in members.json()["data"]] == [
        (account.user_id, "owner")
    ]


async def test_register_with_org_name_names_the_personal_org(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/register",
        json={"email": unique_email(), "password": PASSWORD, "org_name": "Acme Research"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    orgs = await client.get("/v1/orgs", headers=bearer(body["access_token"]))
    assert [(o["id"], o["name"]) for o in orgs.json()["data"]] == [
        (body["user"]["default_org_id"], "Acme Research")
    ]


async def test_register_without_name_names_the_org_after_the_email(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email("carmen")
    account = await register(client, email=email)
    orgs = await client.get("/v1/orgs", headers=account.headers)
    assert orgs.json()["data"][0]["name"] == f"{email.split('@')[0]}'s organisation"


async def test_register_stores_email_in_lower_case(client: httpx.AsyncClient) -> None:
    email = unique_email("dora")
    response = await client.post(
        "/v1/auth/register", json={"email": email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    assert response.json()["user"]["email"] == email.lower()
    assert (await login(client, email.lower(), PASSWORD)).status_code == 200
    assert (await login(client, email.upper(), PASSWORD)).status_code == 200


@pytest.mark.parametrize("transform", [str.lower, str.upper, str.title])
async def test_duplicate_email_is_a_conflict_in_any_letter_case(
    client: httpx.AsyncClient, transform: Any
) -> None:
    email = unique_email("eve")
    first = await register(client, email=email)
    response = await client.post(
        "/v1/auth/register",
        json={"email": transform(email), "password": "another fine passphrase"},
    )
    error = assert_error(response, 409, "conflict_error", "email_taken")
    assert error["param"] == "email"
    # The original account is untouched: its password still works, the other one does not.
    assert (await login(client, email, first.password)).status_code == 200
    assert (await login(client, email, "another fine passphrase")).status_code == 401


@pytest.mark.parametrize(
    ("local", "password", "reason"),
    [
        ("frank", "short1!", "at least 10"),
        ("frank", "password123", "common"),
        ("frank", "PassWord123", "common"),
        ("frank", "ababababababab", "repetitive"),
        ("frank", "x" * 257, "at most 256"),
        ("gwendolyn", "my-Gwendolyn-2024", "email"),
    ],
)
async def test_weak_passwords_are_refused_with_the_reason(
    client: httpx.AsyncClient, local: str, password: str, reason: str
) -> None:
    email = f"{local}@{unique_email('d').split('@')[0]}.example.com"
    response = await client.post("/v1/auth/register", json={"email": email, "password": password})
    error = assert_error(response, 400, "invalid_request_error", "weak_password")
    assert error["param"] == "password"
    assert reason in error["message"]
    # Nothing was created: the address is still free and the weak password logs nobody in.
    assert (await login(client, email, password)).status_code == 401
    await register(client, email=email)


@pytest.mark.parametrize("email", ["not-an-email", "ann@", "@example.com", "ann@@example.com", ""])
async def test_invalid_email_is_a_validation_error(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    error = assert_error(response, 422, "invalid_request_error", "validation_error")
    assert error["param"] == "email"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "hal@example.com"}, "password"),
        ({"email": "hal@example.com", "password": 1234567890123}, "password"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "hal@example.com", "password": PASSWORD, "name": ["Hal"]}, "name"),
        ({"email": "hal@example.com", "password": PASSWORD, "name": "H" * 201}, "name"),
        ({"email": "hal@example.com", "password": ""}, "password"),
        ({"email": "hal@example.com", "password": PASSWORD, "org_name": 7}, "org_name"),
        ({"email": "hal@example.com", "password": PASSWORD, "is_admin": True}, "is_admin"),
    ],
)
async def test_bad_fields_are_validation_errors_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/auth/register", json=payload)
    error = assert_error(response, 422, "invalid_request_error", "validation_error")
    assert error["param"] == param
    assert param in error["message"]


async def test_unknown_field_does_not_create_the_account(client: httpx.AsyncClient) -> None:
    email = unique_email("ivy")
    response = await client.post(
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "is_platform_admin": True},
    )
    assert_error(response, 422, "invalid_request_error", "validation_error")
    assert (await login(client, email, PASSWORD)).status_code == 401


@pytest.mark.parametrize(
    "raw", [b'{"email": "jo@example.com", "password": ', b"{'email': 1}", b"email=jo"]
)
async def test_malformed_json_is_invalid_json(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/v1/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 400, "invalid_request_error", "invalid_json")
    assert error["param"] is None


@pytest.mark.parametrize("body", [[], "a string", 12, None, [{"email": "jo@example.com"}]])
async def test_a_json_body_that_is_not_an_object_is_refused(
    client: httpx.AsyncClient, body: Any
) -> None:
    response = await client.post(
        "/v1/auth/register", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "invalid_request_error", "validation_error")
