"""POST /v1/auth/login: sign-in, no user enumeration, and failed-login throttling per
(account, address) and per address, with a progressive delay."""

from __future__ import annotations

import asyncio

import httpx

from tests.accounts.conftest import AppFactory, ClientFactory
from tests.accounts.helpers import login, me
from tests.support import PASSWORD, FakeSleep, assert_error, register, unique_email

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


async def test_guesses_from_one_address_do_not_lock_the_owner_out_from_another(
    make_app: AppFactory, connect: ClientFactory, sleep: FakeSleep
) -> None:
    app = await make_app()
    owner_client = await connect(app, "198.51.100.1")
    attacker = await connect(app, "198.51.100.2")
    account = await register(owner_client)
    for _ in range(5):
        assert (await login(attacker, account.email, WRONG)).status_code == 401
    # The attacker's address is locked out of this account, even with the right password...
    _assert_throttled(await login(attacker, account.email, PASSWORD), 900)
    # ...while the owner, from an address that has not failed, signs in without waiting.
    waits_before = len(sleep.calls)
    response = await login(owner_client, account.email, PASSWORD)
    assert response.status_code == 200, response.text
    assert sleep.calls[waits_before:] == []
    # A typo of the owner's own does not lock them out either.
    assert (await login(owner_client, account.email, WRONG)).status_code == 401
    assert (await login(owner_client, account.email, PASSWORD)).status_code == 200


async def test_an_ipv6_subscriber_is_one_address_for_its_whole_64(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app()
    account = await register(await connect(app, "198.51.100.1"))
    for host in range(1, 6):  # five addresses of one /64: one address to the limits
        client = await connect(app, f"2001:db8:1:2::{host}")
        assert (await login(client, account.email, WRONG)).status_code == 401
    rotated = await connect(app, "2001:db8:1:2:ffff::99")
    _assert_throttled(await login(rotated, account.email, PASSWORD), 900)
    elsewhere = await connect(app, "2001:db8:1:3::1")
    assert (await login(elsewhere, account.email, PASSWORD)).status_code == 200


async def test_parallel_guesses_cannot_slip_past_the_limit(client: httpx.AsyncClient) -> None:
    account = await register(client)
    answers = await asyncio.gather(*(login(client, account.email, WRONG) for _ in range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 5 + [429] * 7, statuses
    _assert_throttled(await login(client, account.email, PASSWORD), 900)


async def test_failures_beyond_the_first_two_delay_every_answer(
    client: httpx.AsyncClient, sleep: FakeSleep
) -> None:
    account = await register(client)
    for _ in range(2):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert sleep.calls == []
    for _ in range(2):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert sleep.calls == [1.0, 2.0]
    # The right password waits too (the wait comes before the check, so that giving up
    # early reveals nothing), and then the slate is clean.
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    assert sleep.calls == [1.0, 2.0, 4.0]
    assert (await login(client, account.email, WRONG)).status_code == 401
    assert sleep.calls == [1.0, 2.0, 4.0]
    # A refused attempt is answered at once.
    other = await register(client)
    for _ in range(5):
        await login(client, other.email, WRONG)
    waits = len(sleep.calls)
    _assert_throttled(await login(client, other.email, WRONG), 900)
    assert len(sleep.calls) == waits


async def test_the_delay_is_bounded(
    make_app: AppFactory, connect: ClientFactory, sleep: FakeSleep
) -> None:
    app = await make_app(
        login_max_failures_per_account_ip=9,
        login_delay_free_failures=1,
        login_delay_base_s=0.5,
        login_delay_max_s=3,
    )
    client = await connect(app)
    account = await register(client)
    for _ in range(9):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert sleep.calls == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]


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
    app = await make_app(login_max_failures_per_ip=3, login_max_failures_per_account_ip=100)
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
    app = await make_app(login_max_failures_per_ip=3, login_max_failures_per_account_ip=100)
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
    app = await make_app(login_failure_window_s=1, login_max_failures_per_account_ip=2)
    client = await connect(app)
    account = await register(client)
    for _ in range(2):
        assert (await login(client, account.email, WRONG)).status_code == 401
    assert _assert_throttled(await login(client, account.email, PASSWORD), 1) == 1
    await asyncio.sleep(1.1)
    response = await login(client, account.email, PASSWORD)
    assert response.status_code == 200, response.text
