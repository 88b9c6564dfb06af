"""POST /v1/auth/register: the account, its personal organisation, and every way to get it wrong."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import httpx

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


async def test_personal_org_name(client: httpx.AsyncClient) -> None:
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
    # Without a name, the org is named after the email's local part.
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


async def test_duplicate_email_is_a_conflict_in_any_letter_case(client: httpx.AsyncClient) -> None:
    email = unique_email("eve")
    first = await register(client, email=email)
    for variant in (email, email.upper(), email.title()):
        response = await client.post(
            "/v1/auth/register",
            json={"email": variant, "password": "another fine passphrase"},
        )
        error = assert_error(response, 409, "conflict_error", "email_taken")
        assert error["param"] == "email"
    # The original account is untouched: its password still works, the other one does not.
    assert (await login(client, email, first.password)).status_code == 200
    assert (await login(client, email, "another fine passphrase")).status_code == 401


WEAK_PASSWORDS = [
    ("frank", "short1!", "at least 10"),
    ("frank", "password123", "common"),
    ("frank", "PassWord123", "common"),
    ("frank", "ababababababab", "repetitive"),
    ("frank", "x" * 257, "at most 256"),
    ("gwendolyn", "my-Gwendolyn-2024", "email"),
]


async def test_weak_passwords_are_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    for local, password, reason in WEAK_PASSWORDS:
        email = f"{local}@{unique_email('d').split('@')[0]}.example.com"
        response = await client.post(
            "/v1/auth/register", json={"email": email, "password": password}
        )
        error = assert_error(response, 400, "invalid_request_error", "weak_password")
        assert error["param"] == "password"
        assert reason in error["message"], (password, error)
        # Nothing was created: the weak password logs nobody in and the address is still free.
        assert (await login(client, email, password)).status_code == 401
        await register(client, email=email)


async def test_invalid_email_is_a_validation_error(client: httpx.AsyncClient) -> None:
    for email in [
        "not-an-email",
        "ann@",
        "@example.com",
        "ann@@example.com",
        "ann example@x.com",
        "",
    ]:
        response = await client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        error = assert_error(response, 422, "invalid_request_error", "validation_error")
        assert error["param"] == "email", (email, error)


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"password": PASSWORD}, "email"),
    ({"email": "hal@example.com"}, "password"),
    ({"email": "hal@example.com", "password": 1234567890123}, "password"),
    ({"email": 42, "password": PASSWORD}, "email"),
    ({"email": "hal@example.com", "password": PASSWORD, "name": ["Hal"]}, "name"),
    ({"email": "hal@example.com", "password": PASSWORD, "name": "H" * 201}, "name"),
    ({"email": "hal@example.com", "password": ""}, "password"),
    ({"email": "hal@example.com", "password": "p" * 1025}, "password"),
    ({"email": "hal@example.com", "password": PASSWORD, "org_name": 7}, "org_name"),
    ({"email": "hal@example.com", "password": PASSWORD, "is_admin": True}, "is_admin"),
]


async def test_bad_fields_are_validation_errors_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    for payload, param in BAD_FIELDS:
        response = await client.post("/v1/auth/register", json=payload)
        error = assert_error(response, 422, "invalid_request_error", "validation_error")
        assert error["param"] == param, (payload, error)
        assert param in error["message"], (payload, error)
    # None of them created the account.
    assert (await login(client, "hal@example.com", PASSWORD)).status_code == 401


async def test_malformed_json_is_invalid_json(client: httpx.AsyncClient) -> None:
    for raw in [b'{"email": "jo@example.com", "password": ', b"{'email': 1}", b"email=jo"]:
        response = await client.post(
            "/v1/auth/register", content=raw, headers={"Content-Type": "application/json"}
        )
        error = assert_error(response, 400, "invalid_request_error", "invalid_json")
        assert error["param"] is None, (raw, error)


async def test_a_json_body_that_is_not_an_object_is_refused(client: httpx.AsyncClient) -> None:
    for body in [[], "a string", 12, None, [{"email": "jo@example.com", "password": PASSWORD}]]:
        response = await client.post(
            "/v1/auth/register",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 422, "invalid_request_error", "validation_error")


async def test_blank_names_fall_back_to_the_defaults(client: httpx.AsyncClient) -> None:
    email = unique_email("quinn")
    response = await client.post(
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": "   ", "org_name": "  "},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"]["name"] == ""
    orgs = await client.get("/v1/orgs", headers=bearer(body["access_token"]))
    assert orgs.json()["data"][0]["name"] == f"{email.split('@')[0]}'s organisation"

    # Names are trimmed, in the profile and in the organisation named after it.
    response = await client.post(
        "/v1/auth/register",
        json={"email": unique_email(), "password": PASSWORD, "name": "  Rae  "},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"]["name"] == "Rae"
    orgs = await client.get("/v1/orgs", headers=bearer(body["access_token"]))
    assert orgs.json()["data"][0]["name"] == "Rae's organisation"


async def test_concurrent_sign_ups_with_one_email_make_one_account(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email("sam")
    responses = await asyncio.gather(
        *[
            client.post(
                "/v1/auth/register",
                json={"email": email.upper() if i % 2 else email, "password": PASSWORD},
            )
            for i in range(4)
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "conflict_error", "email_taken")
    winner = next(r.json() for r in responses if r.status_code == 201)
    logged_in = await login(client, email, PASSWORD)
    assert logged_in.json()["user"]["id"] == winner["user"]["id"]
