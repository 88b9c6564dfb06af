"""POST /v1/auth/login: sign-in, no user enumeration, and failed-login throttling."""

from __future__ import annotations

import asyncio

import httpx

from tests.accounts.conftest import AppFactory, ClientFactory
from tests.accounts.helpers import login, me
from tests.support import PASSWORD, assert_error, register, unique_email

WRONG = "not the right passphrase"


def _without_request_id(response: httpx.Response) -> tuple[int, dict[str, object], str | None]:
    return response.status_code, response.json(), response.headers.get("retry-after")


def _assert_throttled(response: httpx.Response, window_s: int) -> int:
    error = assert_error(response, 429, "rate_limit_error", "too_many_login_attempts")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_s, retry_after
    assert str(retry_after) in error["message"]
    return retry_after


async def test_login_returns_a_fresh_working_session(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Kim")
    response = await login(client, account.email, PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == account.user_id
    assert body["user"]["name"] == "Kim"
    assert body["user"]["default_org_id"] == account.org_id
    assert body["refresh_token"] != account.refresh_token
    profile = await me(client, body["access_token"])
    assert profile.status_code == 200, profile.text
    assert profile.json()["id"] == account.user_id


async def test_email_is_case_insensitive_but_the_password_is_not(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    response = await login(client, account.email.upper(), PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == account.user_id
    response = await login(client, account.email, PASSWORD.upper())
    assert_error(response, 401, "authentication_error", "invalid_credentials")


async def test_wrong_password_and_unknown_email_are_indistinguishable(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    wrong_password = await login(client, account.email, WRONG)
    unknown_email = await login(client, unique_email("nobody"), WRONG)
    error = assert_error(wrong_password, 401, "authentication_error", "invalid_credentials")
    assert_error(unknown_email, 401, "authentication_error", "invalid_credentials")
    assert _without_request_id(wrong_password) == _without_request_id(unknown_email)
    assert account.email not in error["message"]
    assert error["param"] is None


async def test_bad_login_bodies_are_validation_errors(client: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"password": PASSWORD}, "email"),
        ({"email": "kim@example.com"}, "password"),
        ({"email": "kim@example.com", "password": ""}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "kim@example.com", "password": PASSWORD, "remember": True}, "remember"),
    ]
    for payload, param in cases:
        response = await client.post("/v1/auth/login", json=payload)
        error = assert_error(response, 422, "invalid_request_error", "validation_error")
        assert error["param"] == param, (payload, error)
    response = await client.post(
        "/v1/auth/login", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_request_error", "invalid_json")


async def test_account_is_throttled_after_five_failures(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for _ in range(5):
        assert_error(await login(client, account.email, WRONG), 401, "authentication_error")
    # The sixth attempt is refused before the password is even looked at: right or wrong.
    _assert_throttled(await login(client, account.email, WRONG), 900)
    _assert_throttled(await login(client, account.email, PASSWORD), 900)
    _assert_throttled(await login(client, account.email.upper(), PASSWORD), 900)
    # Another account from the same address is not affected (5 failures < the IP limit).
    other = await register(client)
    assert (await login(client, other.email, PASSWORD)).status_code == 200
    # Sessions already open keep working: throttling guards sign-in only.
    assert (await me(client, account.access_token)).status_code == 200


async def test_unknown_email_is_throttled_like_a_real_one(client: httpx.AsyncClient) -> None:
    email = unique_email("ghost")
    for _ in range(5):
        assert_error(await login(client, email, WRONG), 401, "authentication_error")
    _assert_throttled(await login(client, email, WRONG), 900)


async def test_account_throttle_applies_from_every_address(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app()
    first = await connect(app, "198.51.100.1")
    second = await connect(app, "198.51.100.2")
    account = await register(first)
    for _ in range(5):
        assert (await login(first, account.email, WRONG)).status_code == 401
    _assert_throttled(await login(second, account.email, PASSWORD), 900)


async def test_success_resets_the_account_counter(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for _ in range(4):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    # Without the reset the second of these would already be throttled.
    for _ in range(4):
        assert_error(await login(client, account.email, WRONG), 401, "authentication_error")
    assert (await login(client, account.email, PASSWORD)).status_code == 200


async def test_an_address_is_throttled_across_accounts(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(login_max_failures_per_ip=3, login_max_failures_per_account=100)
    attacker = await connect(app, "198.51.100.66")
    bystander = await connect(app, "198.51.100.77")
    accounts = [await register(bystander) for _ in range(3)]
    for account in accounts:
        assert (await login(attacker, account.email, WRONG)).status_code == 401
    # Now even a correct password from that address is refused, for any account...
    _assert_throttled(await login(attacker, accounts[0].email, PASSWORD), 900)
    fresh = await register(bystander)
    _assert_throttled(await login(attacker, fresh.email, PASSWORD), 900)
    # ...while other addresses still sign in, to the very accounts that were attacked.
    for account in accounts:
        assert (await login(bystander, account.email, PASSWORD)).status_code == 200


async def test_success_does_not_reset_the_address_counter(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(login_max_failures_per_ip=3, login_max_failures_per_account=100)
    client = await connect(app, "198.51.100.9")
    account = await register(client)
    for _ in range(2):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    assert (await login(client, unique_email("x"), WRONG)).status_code == 401
    _assert_throttled(await login(client, account.email, PASSWORD), 900)


async def test_throttle_lifts_when_the_window_passes(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(login_failure_window_s=1, login_max_failures_per_account=2)
    client = await connect(app)
    account = await register(client)
    for _ in range(2):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert _assert_throttled(await login(client, account.email, PASSWORD), 1) == 1
    await asyncio.sleep(1.1)
    response = await login(client, account.email, PASSWORD)
    assert response.status_code == 200, response.text
