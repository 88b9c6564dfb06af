"""Sign-ups are limited per client address (an IPv6 subscriber counts as its /64)."""

from __future__ import annotations

import httpx

from tests.accounts.conftest import AppFactory, ClientFactory
from tests.support import PASSWORD, assert_error, register, unique_email


async def sign_up(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    return await client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": password}
    )


def assert_too_many_signups(response: httpx.Response, window_s: int) -> None:
    error = assert_error(response, 429, "rate_limit_error", "too_many_signups")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_s, retry_after
    assert f"try again in {retry_after} seconds" in error["message"]


async def test_an_address_may_sign_up_only_so_often(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(signup_limit_per_ip=3)
    crowd = await connect(app, "198.51.100.20")
    # Attempts count whatever their outcome: each costs a password hash and tells whether
    # an email has an account.
    assert_error(await sign_up(crowd, password="short"), 400, "invalid_request_error")
    first = await register(crowd)
    assert_error(
        await crowd.post("/v1/auth/register", json={"email": first.email, "password": PASSWORD}),
        409,
        "conflict_error",
        "email_taken",
    )
    refused = await sign_up(crowd)
    assert_too_many_signups(refused, 3600)
    # No account was made by the refused attempt, and others sign up as usual.
    neighbour = await connect(app, "198.51.100.21")
    for _ in range(3):
        await register(neighbour)
    # Those who have accounts still sign in from the limited address.
    signed_in = await crowd.post(
        "/v1/auth/login", json={"email": first.email, "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text


async def test_an_ipv6_subscriber_cannot_dodge_the_limit_within_its_64(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(signup_limit_per_ip=2)
    await register(await connect(app, "2001:db8:5:6::1"))
    await register(await connect(app, "2001:db8:5:6::2"))
    assert_too_many_signups(await sign_up(await connect(app, "2001:db8:5:6:a:b:c:d")), 3600)
    await register(await connect(app, "2001:db8:5:7::1"))
