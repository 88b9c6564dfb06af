"""Refresh-token rotation, reuse detection, expiry and logout."""

from __future__ import annotations

import httpx

from parley.config import Settings
from tests.accounts.helpers import login, logout, me, refresh
from tests.support import PASSWORD, Account, FakeClock, assert_error, register


def _refused(response: httpx.Response) -> None:
    assert_error(response, 401, "authentication_error", "invalid_refresh_token")


async def _rotate(client: httpx.AsyncClient, refresh_token: str) -> dict[str, str]:
    response = await refresh(client, refresh_token)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def _second_session(client: httpx.AsyncClient, account: Account) -> str:
    response = await login(client, account.email, PASSWORD)
    assert response.status_code == 200, response.text
    token: str = response.json()["refresh_token"]
    return token


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, settings: Settings) -> None:
    account = await register(client)
    response = await refresh(client, account.refresh_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_s
    assert body["refresh_token_expires_in"] == settings.refresh_token_ttl_s
    assert body["user"]["id"] == account.user_id
    assert body["refresh_token"].startswith("rt_")
    assert body["refresh_token"] != account.refresh_token
    assert body["access_token"] != account.access_token
    profile = await me(client, body["access_token"])
    assert profile.status_code == 200, profile.text
    assert profile.json()["id"] == account.user_id
    # The new refresh token rotates in turn.
    again = await _rotate(client, body["refresh_token"])
    assert again["refresh_token"] not in (body["refresh_token"], account.refresh_token)


async def test_reusing_a_rotated_token_revokes_the_whole_family(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    second = (await _rotate(client, account.refresh_token))["refresh_token"]
    newest = (await _rotate(client, second))["refresh_token"]
    # The first token comes back (a thief replays it): refused...
    _refused(await refresh(client, account.refresh_token))
    # ...and the legitimate holder's newest token is dead too, as is the middle one.
    _refused(await refresh(client, newest))
    _refused(await refresh(client, second))
    # Replaying again changes nothing and does not revive anything.
    _refused(await refresh(client, account.refresh_token))
    _refused(await refresh(client, newest))
    # Signing in again starts a new, working family.
    fresh = await _second_session(client, account)
    await _rotate(client, fresh)


async def test_reuse_in_one_family_leaves_other_sessions_alone(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    bob = await register(client)
    laptop = await _second_session(client, account)
    phone_next = (await _rotate(client, account.refresh_token))["refresh_token"]
    _refused(await refresh(client, account.refresh_token))
    _refused(await refresh(client, phone_next))
    # The laptop session is another family: it keeps rotating.
    laptop_next = (await _rotate(client, laptop))["refresh_token"]
    await _rotate(client, laptop_next)
    # Another user's sessions are untouched as well.
    await _rotate(client, bob.refresh_token)


async def test_refresh_token_expires_after_its_ttl(
    client: httpx.AsyncClient, clock: FakeClock, settings: Settings
) -> None:
    account = await register(client)
    spare = await _second_session(client, account)
    clock.advance(seconds=settings.refresh_token_ttl_s - 60)
    # Just before the end it still rotates, and the new token gets a full lifetime.
    renewed = (await _rotate(client, spare))["refresh_token"]
    clock.advance(seconds=61)
    _refused(await refresh(client, account.refresh_token))
    clock.advance(seconds=settings.refresh_token_ttl_s - 120)
    await _rotate(client, renewed)
    # The expired one stays expired, and the account is fine: logging in again works.
    _refused(await refresh(client, account.refresh_token))
    await _rotate(client, await _second_session(client, account))


async def test_unknown_and_malformed_refresh_tokens(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for token in ["rt_unknown", account.refresh_token + "x", account.refresh_token[:-1], "x"]:
        _refused(await refresh(client, token))
    # An access token is not a refresh token.
    _refused(await refresh(client, account.access_token))
    # None of this harmed the real one.
    await _rotate(client, account.refresh_token)


async def test_refresh_body_is_validated(client: httpx.AsyncClient) -> None:
    for path in ("/v1/auth/refresh", "/v1/auth/logout"):
        for payload, param in [
            ({"refresh_token": ""}, "refresh_token"),
            ({"refresh_token": 12}, "refresh_token"),
            ({"refresh_token": "rt_" + "x" * 600}, "refresh_token"),
            ({"refresh_token": "rt_x", "extra": 1}, "extra"),
        ]:
            response = await client.post(path, json=payload)
            error = assert_error(response, 422, "invalid_request_error", "validation_error")
            assert error["param"] == param, (path, payload, error)


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await logout(client, account.refresh_token)
    assert response.status_code == 204, response.text
    assert response.content == b""
    _refused(await refresh(client, account.refresh_token))


async def test_logout_after_rotation_ends_the_whole_family(client: httpx.AsyncClient) -> None:
    account = await register(client)
    newest = (await _rotate(client, account.refresh_token))["refresh_token"]
    assert (await logout(client, newest)).status_code == 204
    _refused(await refresh(client, newest))
    _refused(await refresh(client, account.refresh_token))
    # Logging out with an older (already rotated) token of a family ends it just the same.
    session = await _second_session(client, account)
    newer = (await _rotate(client, session))["refresh_token"]
    assert (await logout(client, session)).status_code == 204
    _refused(await refresh(client, newer))


async def test_logout_leaves_other_sessions_alone(client: httpx.AsyncClient) -> None:
    account = await register(client)
    other = await _second_session(client, account)
    assert (await logout(client, account.refresh_token)).status_code == 204
    _refused(await refresh(client, account.refresh_token))
    next_other = (await _rotate(client, other))["refresh_token"]
    await _rotate(client, next_other)


async def test_logout_of_an_unknown_or_ended_session_is_quiet(client: httpx.AsyncClient) -> None:
    account = await register(client)
    assert (await logout(client, "rt_never_issued")).status_code == 204
    assert (await logout(client, account.refresh_token)).status_code == 204
    assert (await logout(client, account.refresh_token)).status_code == 204
    # Logging out someone else's unknown token did not touch this user's other sessions.
    other = await _second_session(client, account)
    assert (await logout(client, "rt_" + "z" * 43)).status_code == 204
    await _rotate(client, other)
