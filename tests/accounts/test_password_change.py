"""POST /v1/users/me/password."""

from __future__ import annotations

import httpx

from tests.accounts.helpers import login, me, refresh
from tests.support import PASSWORD, Account, FakeClock, assert_error, register

NEW_PASSWORD = "a completely different passphrase"


async def _change(
    client: httpx.AsyncClient, account: Account, current: str, new: str
) -> httpx.Response:
    return await client.post(
        "/v1/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=account.headers,
    )


async def test_change_password_swaps_the_password_and_ends_sessions(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    bystander = await register(client)
    second = await login(client, account.email, PASSWORD)
    other_session = second.json()["refresh_token"]

    response = await _change(client, account, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204, response.text
    assert response.content == b""

    assert_error(
        await login(client, account.email, PASSWORD),
        401,
        "authentication_error",
        "invalid_credentials",
    )
    fresh = await login(client, account.email, NEW_PASSWORD)
    assert fresh.status_code == 200, fresh.text
    # Every refresh token issued before the change is dead, the caller's own included...
    for token in (account.refresh_token, other_session):
        assert_error(
            await refresh(client, token), 401, "authentication_error", "invalid_refresh_token"
        )
    # ...while the session started with the new password works.
    assert (await refresh(client, fresh.json()["refresh_token"])).status_code == 200
    # The caller is not locked out of the requests that follow: the access token lives on
    # until it expires.
    assert (await me(client, account.access_token)).status_code == 200
    # Another user's sessions and password are untouched.
    assert (await refresh(client, bystander.refresh_token)).status_code == 200
    assert (await login(client, bystander.email, PASSWORD)).status_code == 200


async def test_wrong_current_password_changes_nothing(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await _change(client, account, "not my current passphrase", NEW_PASSWORD)
    error = assert_error(response, 401, "authentication_error", "invalid_credentials")
    assert error["param"] == "current_password"
    assert (await login(client, account.email, NEW_PASSWORD)).status_code == 401
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    assert (await refresh(client, account.refresh_token)).status_code == 200


async def test_weak_new_password_changes_nothing(client: httpx.AsyncClient) -> None:
    account = await register(client)
    local = account.email.split("@")[0]
    for weak, reason in [
        ("short", "at least"),
        ("password123", "common"),
        ("zzzzzzzzzzzzzzzz", "repetitive"),
        (f"my {local} passphrase", "email"),
        (PASSWORD, "differ"),
    ]:
        response = await _change(client, account, PASSWORD, weak)
        error = assert_error(response, 400, "invalid_request_error", "weak_password")
        assert error["param"] == "new_password", (weak, error)
        assert reason in error["message"], (weak, error)
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    assert (await refresh(client, account.refresh_token)).status_code == 200


async def test_change_password_body_is_validated(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for payload, param in [
        ({"new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": ""}, "new_password"),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "x": 1}, "x"),
    ]:
        response = await client.post("/v1/users/me/password", json=payload, headers=account.headers)
        error = assert_error(response, 422, "invalid_request_error", "validation_error")
        assert error["param"] == param, (payload, error)
    response = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert_error(response, 401, "authentication_error", "missing_credentials")
    assert (await login(client, account.email, PASSWORD)).status_code == 200


async def test_wrong_current_passwords_are_throttled(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for _ in range(5):
        wrong = await client.post(
            "/v1/users/me/password",
            json={"current_password": "not my password", "new_password": "a brand new passphrase"},
            headers=account.headers,
        )
        assert_error(wrong, 401, "authentication_error", "invalid_credentials")
    blocked = await client.post(
        "/v1/users/me/password",
        json={"current_password": account.password, "new_password": "a brand new passphrase"},
        headers=account.headers,
    )
    assert_error(blocked, 429, "rate_limit_error", "too_many_password_attempts")
    assert int(blocked.headers["retry-after"]) > 0


async def test_access_tokens_from_before_a_password_change_stop_working(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await register(client)
    clock.advance(seconds=2)
    changed = await client.post(
        "/v1/users/me/password",
        json={"current_password": account.password, "new_password": "a brand new passphrase"},
        headers=account.headers,
    )
    assert changed.status_code == 204, changed.text
    old = await client.get("/v1/users/me", headers=account.headers)
    assert_error(old, 401, "authentication_error", "token_revoked")
    clock.advance(seconds=1)
    fresh = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": "a brand new passphrase"}
    )
    assert fresh.status_code == 200, fresh.text
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"}
    )
    assert me.status_code == 200
