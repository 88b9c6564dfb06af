"""Requests and tokens per minute, per organisation and per API key, and the OpenAI-style
x-ratelimit-* headers on inference responses."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from tests.support import Account, FakeClock, assert_error, create_key
from tests.usage.conftest import chat, set_plan, settle

RESET = re.compile(r"^(\d+m)?\d+s$")


async def new_key(client: httpx.AsyncClient, account: Account, **limits: int) -> str:
    return str((await create_key(client, account, **limits))["key"])


def limit_headers(response: httpx.Response, kind: str) -> tuple[int, int, str]:
    return (
        int(response.headers[f"x-ratelimit-limit-{kind}"]),
        int(response.headers[f"x-ratelimit-remaining-{kind}"]),
        response.headers[f"x-ratelimit-reset-{kind}"],
    )


def assert_rate_limited(response: httpx.Response, text: str) -> None:
    error = assert_error(response, 429, "rate_limit_error", "rate_limit_exceeded")
    assert text in error["message"], error
    assert 1 <= int(response.headers["retry-after"]) <= 61, response.headers


async def test_requests_per_minute_are_counted_for_the_whole_organisation(
    app: FastAPI, client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    await set_plan(app, account.org_id, "custom", rpm=3)
    first, second = await new_key(client, account), await new_key(client, account)
    codes = [(await chat(client, key)).status_code for key in (first, first, second)]
    assert codes == [200, 200, 200]

    refused = await chat(client, second)
    assert_rate_limited(refused, "3 requests per minute for this organisation")
    assert limit_headers(refused, "requests")[:2] == (3, 0)

    clock.advance(minutes=1)
    assert (await chat(client, first)).status_code == 200, "a new minute, a new window"


async def test_an_api_key_may_have_a_lower_rate_than_its_plan(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    await set_plan(app, account.org_id, "custom", rpm=5)
    slow, other = await new_key(client, account, rpm_limit=2), await new_key(client, account)
    responses = [await chat(client, slow) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert [limit_headers(r, "requests")[:2] for r in responses] == [(2, 1), (2, 0)]

    assert_rate_limited(await chat(client, slow), "2 requests per minute for this API key")
    ok = await chat(client, other)
    assert ok.status_code == 200, "the organisation still has room"
    assert limit_headers(ok, "requests")[:2] == (5, 2)


async def test_every_inference_response_carries_its_rate_limits(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    await set_plan(app, account.org_id, "custom", rpm=10, tpm=100_000)
    caps = await client.patch(
        "/v1/billing/subscription",
        json={"message_cap": 5},
        headers=account.in_org(account.org_id),
    )
    assert caps.status_code == 200, caps.text

    # Each asks for one token: its reservation is below what it uses, so every call lowers
    # what remains, even once the ones before it are settled.
    responses = [await chat(client, secret, max_tokens=1) for _ in range(2)]
    async with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "parley-mock", "messages": [{"role": "user", "content": "Hi"}]}
        | {"stream": True, "max_tokens": 1},
        headers={"Authorization": f"Bearer {secret}"},
    ) as streamed:
        assert streamed.status_code == 200
        await streamed.aread()
    responses.append(streamed)
    # A person's token: the limits are the organisation's (not the message cap of 5).
    responses.append(await chat(client, account.access_token, org_id=account.org_id, max_tokens=1))

    requests = [limit_headers(r, "requests") for r in responses]
    assert [(limit, left) for limit, left, _ in requests] == [(10, 9), (10, 8), (10, 7), (10, 6)]
    tokens = [limit_headers(r, "tokens") for r in responses]
    assert {limit for limit, _, _ in tokens} == {100_000}
    left = [remaining for _, remaining, _ in tokens]
    assert left == sorted(set(left), reverse=True), "remaining goes down with every call"
    for _, _, reset in requests + tokens:
        assert RESET.match(reset), reset


async def test_tokens_per_minute_count_the_estimate_then_what_was_used(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    await set_plan(app, account.org_id, "custom", tpm=200)
    first = await chat(client, secret, max_tokens=50)
    assert first.status_code == 200, first.text
    limit, left_first, _ = limit_headers(first, "tokens")
    estimate = limit - left_first
    assert estimate > 50, "the estimate reserves the reply's max_tokens"
    await settle(app)  # the estimate is replaced by what the call used

    second = await chat(client, secret, max_tokens=50)
    used = first.json()["usage"]["total_tokens"]
    assert limit_headers(second, "tokens")[:2] == (200, 200 - used - estimate)
    await settle(app)

    refused = await chat(client, secret, max_tokens=190)
    assert_rate_limited(refused, "200 tokens per minute for this organisation")
    assert (await chat(client, secret, max_tokens=50)).status_code == 200, "a smaller one fits"

    thrifty = await new_key(client, account, tpm_limit=60)
    assert_rate_limited(
        await chat(client, thrifty, max_tokens=100), "60 tokens per minute for this API key"
    )
    fits = await chat(client, thrifty, max_tokens=10)
    assert fits.status_code == 200, fits.text
    assert limit_headers(fits, "tokens")[0] == 60
