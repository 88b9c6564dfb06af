"""The browser's refresh token: an httpOnly, SameSite=Strict cookie scoped to /v1/auth."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
from fastapi import FastAPI

from tests.accounts.conftest import AppFactory, ClientFactory
from tests.support import PASSWORD, assert_error, unique_email

COOKIE = "parley_refresh"


def _set_cookie(response: httpx.Response) -> SimpleCookie:
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    assert COOKIE in jar, headers
    return jar


def _assert_session_cookie(response: httpx.Response, *, secure: bool = False) -> str:
    morsel = _set_cookie(response)[COOKIE]
    raw = response.headers["set-cookie"].lower()
    assert "httponly" in raw
    assert "samesite=strict" in raw
    assert morsel["path"] == "/v1/auth"
    assert ("secure" in raw.split("; ")) is secure
    body = response.json()
    assert morsel.value == body["refresh_token"]
    assert int(morsel["max-age"]) == body["refresh_token_expires_in"]
    return morsel.value


async def test_register_login_and_refresh_set_the_cookie_and_keep_the_bodies(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    registered = await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    _assert_session_cookie(registered)
    assert set(registered.json()) >= {"access_token", "refresh_token", "expires_in", "user"}

    logged_in = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
    cookie = _assert_session_cookie(logged_in)

    # With no refresh_token in the body (none at all, or an empty object), the cookie is used.
    for kwargs in ({}, {"json": {}}):
        refreshed = await client.post("/v1/auth/refresh", **kwargs)  # type: ignore[arg-type]
        assert refreshed.status_code == 200, refreshed.text
        rotated = _assert_session_cookie(refreshed)
        assert rotated != cookie
        assert refreshed.json()["user"]["email"] == email
        # The client's jar holds the rotated token; the old one is spent.
        assert client.cookies.get(COOKIE) == rotated
        cookie = rotated


async def test_the_body_wins_over_the_cookie(client: httpx.AsyncClient) -> None:
    first = (
        await client.post("/v1/auth/register", json={"email": unique_email(), "password": PASSWORD})
    ).json()
    second = await client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    assert client.cookies.get(COOKIE) == second.json()["refresh_token"]
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["user"]["id"] == first["user"]["id"]


async def test_refresh_without_body_or_cookie_is_refused(client: httpx.AsyncClient) -> None:
    for kwargs in ({}, {"json": {}}):
        response = await client.post("/v1/auth/refresh", **kwargs)  # type: ignore[arg-type]
        assert_error(response, 401, "authentication_error", "missing_refresh_token")


async def test_a_spent_cookie_is_refused(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    old = registered.json()["refresh_token"]
    assert (await client.post("/v1/auth/refresh")).status_code == 200
    client.cookies.set(COOKIE, old, domain="parley.test", path="/v1/auth")
    response = await client.post("/v1/auth/refresh")
    assert_error(response, 401, "authentication_error", "invalid_refresh_token")


async def test_logout_by_cookie_ends_the_session_and_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    registered = await client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    token = registered.json()["refresh_token"]
    response = await client.post("/v1/auth/logout")
    assert response.status_code == 204, response.text
    cleared = _set_cookie(response)[COOKIE]
    assert cleared.value == ""
    assert cleared["path"] == "/v1/auth"
    assert int(cleared["max-age"]) == 0
    assert client.cookies.get(COOKIE) is None
    # The session is over: its token no longer refreshes.
    refused = await client.post("/v1/auth/refresh", json={"refresh_token": token})
    assert_error(refused, 401, "authentication_error", "invalid_refresh_token")


async def test_logout_without_any_token_still_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/auth/logout")
    assert response.status_code == 204, response.text
    assert _set_cookie(response)[COOKIE].value == ""


async def test_the_cookie_is_secure_when_served_over_https(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app: FastAPI = await make_app(public_url="https://parley.example")
    client = await connect(app)
    response = await client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    _assert_session_cookie(response, secure=True)
