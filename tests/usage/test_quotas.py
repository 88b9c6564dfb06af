"""Message quotas, caps and the spending cap: exact under concurrency, on one process or two,
free of charge when a call fails, fresh each period, and rebuilt from the ledger. (Redis
going away: test_quota_backend.py.)"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from parley.app import create_app
from parley.config import Settings
from tests.support import (
    Account,
    FakeClock,
    asgi_client,
    assert_error,
    running,
    serving,
)
from tests.usage.conftest import (
    BROKEN,
    MICROS_PER_TOKEN,
    PREMIUM,
    PRICED,
    chat,
    notices,
    set_plan,
    settle,
    summary,
    usage_events,
)


async def patch_caps(
    client: httpx.AsyncClient, account: Account, **caps: int | None
) -> dict[str, Any]:
    response = await client.patch(
        "/v1/billing/subscription", json=caps, headers=account.in_org(account.org_id)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def period_end(app: FastAPI, org_id: str) -> datetime:
    end: datetime = (await app.state.ctx.billing.limits(org_id)).period_end
    return end


def assert_quota_refusal(
    response: httpx.Response, code: str, *, limit: int, resets: datetime, now: datetime
) -> None:
    error = assert_error(response, 429, "quota_exceeded", code)
    assert f"all {limit} messages" in error["message"], error
    assert resets.isoformat() in error["message"], error
    retry_after = int(response.headers["retry-after"])
    assert abs(retry_after - (resets - now).total_seconds()) <= 2, retry_after


# --- exactness under concurrency -----------------------------------------------------------


async def test_the_last_ten_messages_go_to_exactly_ten_of_fifty_concurrent_requests(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str, clock: FakeClock
) -> None:
    await set_plan(app, account.org_id, "custom", messages=12)
    await patch_caps(client, account, message_cap=12)  # custom continues into overage otherwise
    for _ in range(2):
        assert (await chat(client, secret)).status_code == 200
    await settle(app)

    responses = await asyncio.gather(*(chat(client, secret) for _ in range(50)))

    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 40
    resets = await period_end(app, account.org_id)
    for response in responses:
        if response.status_code == 429:
            assert_quota_refusal(
                response, "message_cap_reached", limit=12, resets=resets, now=clock()
            )
    await settle(app)
    assert (await summary(client, account))["messages"]["used"] == 12
    assert sum(e.messages for e in await usage_events(app, account.org_id)) == 12


@pytest.mark.parametrize("stack", ["scaleout"])
async def test_two_instances_over_real_sockets_share_the_last_ten_messages(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    secret: str,
    settings: Settings,
    clock: FakeClock,
) -> None:
    await set_plan(app, account.org_id, "custom", messages=12)
    await patch_caps(client, account, message_cap=12)
    for _ in range(2):
        assert (await chat(client, secret)).status_code == 200
    await settle(app)
    other = create_app(settings, clock=clock, configure_logs=False)
    async with (
        other.router.lifespan_context(other),
        serving(app) as first_url,
        serving(other) as second_url,
        httpx.AsyncClient(base_url=first_url) as first,
        httpx.AsyncClient(base_url=second_url) as second,
    ):
        responses = await asyncio.gather(
            *(chat(c, secret) for _ in range(25) for c in (first, second))
        )
        await settle(other)
        await other.state.ctx.usage_recorder.flush()
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 40
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["type"] == "quota_exceeded"
            assert int(response.headers["retry-after"]) > 0
    await settle(app)
    events = await usage_events(app, account.org_id)
    assert sum(e.messages for e in events) == 12, "one ledger for both instances"


# --- what counts --------------------------------------------------------------------------


async def test_a_failed_upstream_call_gives_its_message_back(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    await set_plan(app, account.org_id, "custom", messages=2)
    await patch_caps(client, account, message_cap=2)
    for _ in range(3):
        failure = await chat(client, secret, BROKEN)
        assert failure.status_code in (502, 503, 504), failure.text
        assert failure.json()["error"]["type"] == "api_error"
        await settle(app)  # the reservation is given back off the request path
    assert (await summary(client, account))["messages"]["used"] == 0

    assert [(await chat(client, secret)).status_code for _ in range(3)] == [200, 200, 429]
    events = await usage_events(app, account.org_id)
    assert sorted((e.status, e.messages) for e in events) == [
        ("error", 0),
        ("error", 0),
        ("error", 0),
        ("ok", 1),
        ("ok", 1),
    ]


@pytest.mark.parametrize("plans_override", [{"free": {"messages": 3}}])
async def test_the_free_plan_stops_at_its_quota(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str, clock: FakeClock
) -> None:
    assert [(await chat(client, secret)).status_code for _ in range(3)] == [200] * 3
    refused = await chat(client, secret)
    resets = await period_end(app, account.org_id)
    assert_quota_refusal(refused, "message_quota_exceeded", limit=3, resets=resets, now=clock())
    assert "Free plan" in refused.json()["error"]["message"]
    await settle(app)
    events = await usage_events(app, account.org_id)
    assert [(e.messages, e.overage_messages) for e in events] == [(1, 0)] * 3

    # On the free plan too, an organisation may stop itself below the plan's quota.
    await patch_caps(client, account, message_cap=2)
    clock.advance(days=31)
    assert [(await chat(client, secret)).status_code for _ in range(2)] == [200] * 2
    refused = await chat(client, secret)
    resets = await period_end(app, account.org_id)
    assert_quota_refusal(refused, "message_cap_reached", limit=2, resets=resets, now=clock())


@pytest.mark.parametrize("plans_override", [{"starter": {"messages": 2}}])
async def test_a_paid_plan_continues_into_overage_until_its_own_message_cap(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str, clock: FakeClock
) -> None:
    await set_plan(app, account.org_id, "starter")
    assert [(await chat(client, secret)).status_code for _ in range(4)] == [200] * 4
    await settle(app)
    events = await usage_events(app, account.org_id)
    assert [e.overage_messages for e in events] == [0, 0, 1, 1]
    messages = (await summary(client, account))["messages"]
    assert messages == {"used": 4, "limit": 2, "remaining": 0, "overage": 2}

    caps = await patch_caps(client, account, message_cap=5)
    assert caps["message_cap"] == 5
    assert (await chat(client, secret)).status_code == 200
    refused = await chat(client, secret)
    resets = await period_end(app, account.org_id)
    assert_quota_refusal(refused, "message_cap_reached", limit=5, resets=resets, now=clock())
    assert "own cap" in refused.json()["error"]["message"]

    await patch_caps(client, account, message_cap=None)
    assert (await chat(client, secret)).status_code == 200, "the cap lifted, overage resumes"
    await patch_caps(client, account, message_cap=0)
    assert_error(await chat(client, secret), 429, "quota_exceeded", "message_cap_reached")
    assert (await summary(client, account))["messages"] == {
        "used": 6,
        "limit": 0,
        "remaining": 0,
        "overage": 4,
    }


async def test_the_spending_cap_stops_requests_once_the_cost_reaches_it(
    app: FastAPI, client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    """Through a user's token, with a large max_tokens: the token estimate is corrected
    after the call, and that correction must not touch what was spent."""
    token = account.access_token

    await patch_caps(client, account, spending_cap_micros=0)
    nothing = await chat(client, token, PRICED, max_tokens=1000)
    assert_error(nothing, 429, "quota_exceeded", "spending_cap_reached")

    await patch_caps(client, account, spending_cap_micros=None)
    first = await chat(client, token, PRICED, max_tokens=1000)
    assert first.status_code == 200, first.text
    cost = first.json()["usage"]["total_tokens"] * MICROS_PER_TOKEN
    await settle(app)

    await patch_caps(client, account, spending_cap_micros=2 * cost)
    second = await chat(client, token, PRICED, max_tokens=1000)
    assert second.status_code == 200, second.text
    await settle(app)
    refused = await chat(client, token, PRICED, max_tokens=1000)
    error = assert_error(refused, 429, "quota_exceeded", "spending_cap_reached")
    assert f"{2 * cost / 1_000_000:.2f} USD" in error["message"]
    resets = await period_end(app, account.org_id)
    assert resets.isoformat() in error["message"]
    assert abs(int(refused.headers["retry-after"]) - (resets - clock()).total_seconds()) <= 2

    spend = (await summary(client, account))["spend_micros"]
    assert spend == {"used": 2 * cost, "limit": 2 * cost, "remaining": 0, "overage": 0}


async def test_the_plan_decides_which_models_may_be_used(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    listed = await client.get("/v1/models", headers=headers)
    assert listed.status_code == 200, listed.text
    assert PREMIUM not in {m["id"] for m in listed.json()["data"]}
    assert "parley-mock" in {m["id"] for m in listed.json()["data"]}
    assert (await client.get(f"/v1/models/{PREMIUM}", headers=headers)).status_code == 404

    refused = await chat(client, secret, PREMIUM)
    error = assert_error(refused, 403, "permission_error", "model_not_allowed")
    assert error["param"] == "model"
    for plan in ("Free", "starter", "professional", "enterprise"):
        assert plan in error["message"], error

    await set_plan(app, account.org_id, "starter")
    listed = await client.get("/v1/models", headers=headers)
    assert PREMIUM in {m["id"] for m in listed.json()["data"]}
    assert (await chat(client, secret, PREMIUM)).status_code == 200


# --- periods and plan changes ---------------------------------------------------------------


@pytest.mark.parametrize("plans_override", [{"free": {"messages": 3}}])
async def test_a_new_period_brings_a_fresh_quota(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str, clock: FakeClock
) -> None:
    before = await period_end(app, account.org_id)
    assert [(await chat(client, secret)).status_code for _ in range(4)] == [200] * 3 + [429]
    clock.advance(days=31)
    assert [(await chat(client, secret)).status_code for _ in range(4)] == [200] * 3 + [429]
    assert await period_end(app, account.org_id) > before
    await settle(app)
    assert len(await usage_events(app, account.org_id)) == 6


@pytest.mark.parametrize("plans_override", [{"free": {"messages": 3}, "starter": {"messages": 4}}])
async def test_a_plan_change_takes_effect_at_once_and_keeps_what_was_used(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    assert [(await chat(client, secret)).status_code for _ in range(4)] == [200] * 3 + [429]
    await set_plan(app, account.org_id, "starter")
    assert [(await chat(client, secret)).status_code for _ in range(2)] == [200, 200]
    await settle(app)
    events = await usage_events(app, account.org_id)
    assert [e.overage_messages for e in events] == [0] * 4 + [1], "3 used stayed: the 5th is over"
    messages = (await summary(client, account))["messages"]
    assert messages == {"used": 5, "limit": 4, "remaining": 0, "overage": 1}


@pytest.mark.parametrize("stack", ["scaleout"])
async def test_a_plan_change_reaches_the_other_instances_at_once(
    app: FastAPI, account: Account, secret: str, settings: Settings, clock: FakeClock
) -> None:
    async with running(settings, clock) as other, asgi_client(other) as other_client:
        refused = await chat(other_client, secret, PREMIUM)  # the free plan, now cached there
        assert_error(refused, 403, "permission_error", "model_not_allowed")
        await set_plan(app, account.org_id, "starter")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3  # well inside the 10 s the limits are cached for
        while loop.time() < deadline:
            models = await other_client.get(
                "/v1/models", headers={"Authorization": f"Bearer {secret}"}
            )
            if PREMIUM in {m["id"] for m in models.json()["data"]}:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the other instance kept the old plan")
        assert (await chat(other_client, secret, PREMIUM)).status_code == 200


# --- counters rebuilt, Redis away ---------------------------------------------------------


@pytest.mark.parametrize("plans_override", [{"free": {"messages": 5}}])
async def test_counters_lost_are_rebuilt_from_the_ledger(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    secret: str,
    settings: Settings,
    stack: str,
    clock: FakeClock,
) -> None:
    assert [(await chat(client, secret)).status_code for _ in range(3)] == [200] * 3
    await settle(app)
    assert await app.state.ctx.usage_recorder.flush() == 3

    if stack == "embedded":
        # A restart: a new process over the same database, its counters empty.
        async with running(settings, clock) as fresh, asgi_client(fresh) as fresh_client:
            codes = [(await chat(fresh_client, secret)).status_code for _ in range(3)]
    else:
        # Redis lost its keys (flush, eviction, a new server).
        redis = Redis.from_url(str(settings.redis_url))
        try:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_namespace}:l:*")]
            assert keys
            await redis.delete(*keys)
        finally:
            await redis.aclose()
        codes = [(await chat(client, secret)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


# --- notices ------------------------------------------------------------------------------


@pytest.mark.parametrize("plans_override", [{"starter": {"messages": 5}}])
async def test_crossing_80_and_100_percent_is_recorded_once_per_period(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    await set_plan(app, account.org_id, "starter")
    for _ in range(3):
        assert (await chat(client, secret)).status_code == 200
    await settle(app)
    assert await notices(app, account.org_id) == []

    assert (await chat(client, secret)).status_code == 200
    await settle(app)
    found = await notices(app, account.org_id)
    assert [(n.quota, n.threshold, n.used, n.limit) for n in found] == [("messages", 80, 4, 5)]

    for _ in range(3):  # to 100% and on into overage
        assert (await chat(client, secret)).status_code == 200
    await settle(app)
    app.state.ctx.quotas._noticed.clear()  # as another process would: only the table knows
    assert (await chat(client, secret)).status_code == 200
    await settle(app)
    found = await notices(app, account.org_id)
    assert [(n.quota, n.threshold, n.used, n.limit) for n in found] == [
        ("messages", 80, 4, 5),
        ("messages", 100, 5, 5),
    ]
    start = (await app.state.ctx.billing.limits(account.org_id)).period_start
    assert {n.period_start for n in found} == {start}
