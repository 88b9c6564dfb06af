"""Access tokens on /v1/users/me: what works, what expires, and what is refused."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt

from parley.config import Settings
from tests.accounts.helpers import login, me, refresh
from tests.support import PASSWORD, FakeClock, assert_error, create_key, register


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(_unb64(token.split(".")[1]))
    return claims


def _sign(settings: Settings, now: datetime, **changes: Any) -> str:
    """A token signed with the server's own key, with some claims changed or removed."""
    payload: dict[str, Any] = {
        "sub": "usr_x",
        "iss": settings.jwt_issuer,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "test",
        "typ": "access",
    }
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    return jwt.encode(payload, settings.signing_key(), algorithm="HS256")


async def test_access_token_identifies_its_user(client: httpx.AsyncClient) -> None:
    ann = await register(client, name="Ann")
    bob = await register(client, name="Bob")
    for account, name in ((ann, "Ann"), (bob, "Bob")):
        response = await me(client, account.access_token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "user"
        assert (body["id"], body["email"], body["name"]) == (account.user_id, account.email, name)
        assert body["default_org_id"] == account.org_id
        assert set(body) == {"object", "id", "email", "name", "default_org_id", "created_at"}
    # The scheme name is case-insensitive.
    response = await client.get(
        "/v1/users/me", headers={"Authorization": f"bearer {ann.access_token}"}
    )
    assert response.status_code == 200, response.text


async def test_access_token_expires_after_its_ttl(
    client: httpx.AsyncClient, clock: FakeClock, settings: Settings
) -> None:
    account = await register(client)
    clock.advance(seconds=settings.access_token_ttl_s - 1)
    assert (await me(client, account.access_token)).status_code == 200
    clock.advance(seconds=1)
    error = assert_error(
        await me(client, account.access_token), 401, "authentication_error", "token_expired"
    )
    assert "refresh" in error["message"]


async def test_tokens_issued_after_time_moves_on_work(
    client: httpx.AsyncClient, clock: FakeClock, settings: Settings
) -> None:
    """The expired-token remedy works: refresh (or log in again) and carry on."""
    account = await register(client)
    clock.advance(seconds=settings.access_token_ttl_s + 60)
    assert_error(await me(client, account.access_token), 401, "authentication_error")

    refreshed = await refresh(client, account.refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    response = await me(client, refreshed.json()["access_token"])
    assert response.status_code == 200, response.text

    clock.advance(hours=6)
    logged_in = await login(client, account.email, PASSWORD)
    assert logged_in.status_code == 200, logged_in.text
    response = await me(client, logged_in.json()["access_token"])
    assert response.status_code == 200, response.text


async def test_expires_in_matches_the_token(
    client: httpx.AsyncClient, clock: FakeClock, settings: Settings
) -> None:
    response = await client.post(
        "/v1/auth/login", json={"email": (await register(client)).email, "password": PASSWORD}
    )
    body = response.json()
    claims = _claims(body["access_token"])
    assert claims["typ"] == "access"
    assert claims["sub"] == body["user"]["id"]
    assert abs(claims["exp"] - (clock.now.timestamp() + body["expires_in"])) <= 1
    assert body["expires_in"] == settings.access_token_ttl_s


async def test_tampered_signature_is_refused(client: httpx.AsyncClient) -> None:
    account = await register(client)
    header, payload, signature = account.access_token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    forged = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    assert_error(await me(client, forged), 401, "authentication_error", "invalid_token")
    assert_error(await me(client, f"{header}.{payload}."), 401, "authentication_error")


async def test_tampered_payload_cannot_impersonate_another_user(
    client: httpx.AsyncClient,
) -> None:
    mallory = await register(client)
    victim = await register(client)
    header, payload, signature = mallory.access_token.split(".")
    claims = json.loads(_unb64(payload))
    claims["sub"] = victim.user_id
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert_error(await me(client, forged), 401, "authentication_error", "invalid_token")

    claims = json.loads(_unb64(payload))
    claims["exp"] += 365 * 24 * 3600
    extended = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert_error(await me(client, extended), 401, "authentication_error", "invalid_token")


async def test_token_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    account = await register(client)
    claims = _claims(account.access_token)
    forged = jwt.encode(claims, "some-other-signing-key-" + "y" * 32, algorithm="HS256")
    assert_error(await me(client, forged), 401, "authentication_error", "invalid_token")
    # The same claims signed with the server's key do work: only the key was wrong.
    genuine = jwt.encode(claims, settings.signing_key(), algorithm="HS256")
    assert (await me(client, genuine)).status_code == 200
    # No signature at all, or the right key under another algorithm: refused too.
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert_error(await me(client, unsigned), 401, "authentication_error", "invalid_token")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT finds the key short for HS512; so do we
        hs512 = jwt.encode(claims, settings.signing_key(), algorithm="HS512")
    assert_error(await me(client, hs512), 401, "authentication_error", "invalid_token")


async def test_tokens_with_wrong_claims_are_refused_even_when_signed(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    account = await register(client)
    user_id = account.user_id
    now = clock.now
    assert (await me(client, _sign(settings, now, sub=user_id))).status_code == 200
    refused = {
        "another issuer": _sign(settings, now, sub=user_id, iss="someone-else"),
        "a refresh-type token": _sign(settings, now, sub=user_id, typ="refresh"),
        "no type": _sign(settings, now, sub=user_id, typ=None),
        "no expiry": _sign(settings, now, sub=user_id, exp=None),
        "no subject": _sign(settings, now, sub=None),
        "no issuer": _sign(settings, now, sub=user_id, iss=None),
        "a text expiry": _sign(settings, now, sub=user_id, exp="tomorrow"),
        "an absurd expiry": _sign(settings, now, sub=user_id, exp=10**30),
        "a user that does not exist": _sign(settings, now, sub="usr_doesnotexist"),
    }
    for why, token in refused.items():
        response = await me(client, token)
        assert response.status_code == 401, (why, response.text)
        assert_error(response, 401, "authentication_error", "invalid_token")


async def test_garbage_tokens_are_refused(client: httpx.AsyncClient) -> None:
    for token in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "rt_" + "x" * 43, "café"]:
        header = f"Bearer {token}".encode("latin-1")
        response = await client.get("/v1/users/me", headers={"Authorization": header})
        assert response.status_code == 401, (token, response.text)
        assert_error(response, 401, "authentication_error", "invalid_token")
    # Nor is a refresh token an access token.
    account = await register(client)
    assert_error(
        await me(client, account.refresh_token), 401, "authentication_error", "invalid_token"
    )


async def test_missing_credentials(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for headers in [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {account.access_token}"},
        {"Authorization": account.access_token},
    ]:
        response = await client.get("/v1/users/me", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        error = assert_error(response, 401, "authentication_error", "missing_credentials")
        assert "Bearer" in error["message"]


async def test_api_key_cannot_act_as_the_user(client: httpx.AsyncClient) -> None:
    account = await register(client)
    key = await create_key(client, account)
    secret = key["key"]
    assert secret.startswith("sk-parley-")
    # The key is valid (it may list its org)...
    assert (
        await client.get("/v1/orgs", headers={"Authorization": f"Bearer {secret}"})
    ).status_code == 200
    # ...but the user routes want a person.
    headers = {"Authorization": f"Bearer {secret}"}
    for response in [
        await client.get("/v1/users/me", headers=headers),
        await client.patch("/v1/users/me", json={"name": "Key"}, headers=headers),
        await client.post(
            "/v1/users/me/password",
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
            headers=headers,
        ),
    ]:
        assert_error(response, 403, "permission_error", "user_token_required")
    # Nothing changed behind the refusals.
    assert (await me(client, account.access_token)).json()["name"] == ""
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    # A key that does not exist is not a permission question but an authentication one.
    response = await client.get(
        "/v1/users/me", headers={"Authorization": "Bearer sk-parley-" + "0" * 43}
    )
    assert_error(response, 401, "authentication_error", "invalid_api_key")
