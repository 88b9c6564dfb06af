"""The usage summary (this period against the plan) and the usage report (from the ledger,
grouped by day, model, API key or user; JSON or CSV), and who may read them."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from tests.orgs.helpers import log_in_again
from tests.support import Account, FakeClock, assert_error, create_key, join, register
from tests.usage.conftest import (
    BROKEN,
    MICROS_PER_TOKEN,
    MOCK,
    PRICED,
    chat,
    set_plan,
    settle,
    summary,
)

MB = 1024 * 1024


def quota(used: int, limit: int | None, overage: int = 0) -> dict[str, int | None]:
    remaining = None if limit is None else max(0, limit - used)
    return {"used": used, "limit": limit, "remaining": remaining, "overage": overage}


async def test_the_summary_shows_each_quota_and_the_cost_so_far(
    app: FastAPI, client: httpx.AsyncClient, account: Account, secret: str
) -> None:
    priced = [await chat(client, secret, PRICED) for _ in range(2)]
    assert (await chat(client, account.access_token, MOCK)).status_code == 200
    assert (await chat(client, secret, BROKEN)).status_code >= 500
    await settle(app)
    cost = sum(r.json()["usage"]["total_tokens"] * MICROS_PER_TOKEN for r in priced)
    assert cost > 0

    before_flush = await summary(client, account)
    assert before_flush["object"] == "usage.summary"
    assert before_flush["org_id"] == account.org_id
    assert before_flush["plan"] == "free"
    assert before_flush["messages"] == quota(3, 1000)
    assert before_flush["cost_micros"] == cost
    assert before_flush["currency"] == "USD"
    assert before_flush["spend_micros"] == quota(cost, None)
    assert before_flush["seats"] == quota(1, 1)
    assert before_flush["storage_bytes"] == quota(0, 5 * MB)
    subscription = await client.get(
        "/v1/billing/subscription", headers=account.in_org(account.org_id)
    )
    period = subscription.json()
    assert before_flush["period_start"] == period["current_period_start"]
    assert before_flush["period_end"] == period["current_period_end"]

    await app.state.ctx.usage_recorder.flush()
    assert await summary(client, account) == before_flush, "ledger and buffer counted once"

    # Members of every role read their organisation's usage; others do not see it at all.
    await set_plan(app, account.org_id, "starter")
    viewer = await join(client, account, account.org_id, "viewer")
    member = await join(client, account, account.org_id, "member")
    for reader in (viewer, member):
        seen = await client.get("/v1/usage/summary", headers=reader.in_org(account.org_id))
        assert seen.status_code == 200, seen.text
        assert seen.json()["messages"] == quota(3, 10_000)
        assert seen.json()["seats"] == quota(3, 3)
        assert seen.json()["cost_micros"] == cost
        report = await client.get("/v1/usage", headers=reader.in_org(account.org_id))
        assert report.status_code == 200, report.text

    stranger = await register(client)
    for path in ("/v1/usage/summary", "/v1/usage"):
        hidden = await client.get(path, headers=stranger.in_org(account.org_id))
        assert_error(hidden, 404, "not_found_error")
    assert (await summary(client, stranger))["messages"] == quota(0, 1000)


@dataclass
class Call:
    day: str
    model: str
    api_key: str | None
    user: str | None
    prompt: int
    completion: int
    ok: bool


def expected(calls: list[Call], group_by: str) -> dict[str | None, dict[str, Any]]:
    rows: dict[str | None, dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(
            (
                "requests",
                "messages",
                "prompt_tokens",
                "completion_tokens",
                "cost_micros",
                "overage_messages",
            ),
            0,
        )
    )
    for call in calls:
        row = rows[getattr(call, group_by)]
        row["requests"] += 1
        row["messages"] += int(call.ok)
        row["prompt_tokens"] += call.prompt
        row["completion_tokens"] += call.completion
        if call.model == PRICED:
            row["cost_micros"] += (call.prompt + call.completion) * MICROS_PER_TOKEN
    return dict(rows)


async def report(
    client: httpx.AsyncClient, account: Account, **params: str
) -> tuple[dict[str, Any], dict[str | None, dict[str, Any]]]:
    response = await client.get("/v1/usage", params=params, headers=account.in_org(account.org_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["object"] == "usage.report"
    rows = {row.pop("group"): row for row in body["data"]}
    assert len(rows) == len(body["data"])
    return body, rows


async def test_the_report_breaks_usage_down_by_day_model_key_and_user(
    app: FastAPI, client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    first = await create_key(client, account)
    second = await create_key(client, account)
    calls: list[Call] = []
    start = clock()

    async def call(token: str, key: dict[str, Any] | None, model: str) -> None:
        response = await chat(client, token, model, org_id=account.org_id)
        ok = response.status_code == 200
        usage = response.json()["usage"] if ok else {"prompt_tokens": 0, "completion_tokens": 0}
        calls.append(
            Call(
                day=clock().date().isoformat(),
                model=model,
                api_key=key["id"] if key else None,
                user=None if key else account.user_id,
                prompt=usage["prompt_tokens"],
                completion=usage["completion_tokens"],
                ok=ok,
            )
        )

    await call(first["key"], first, PRICED)
    await call(first["key"], first, PRICED)
    await call(second["key"], second, MOCK)
    await call(account.access_token, None, MOCK)
    clock.advance(days=1)
    await log_in_again(client, account)
    await call(first["key"], first, MOCK)
    await call(second["key"], second, PRICED)
    await call(second["key"], second, BROKEN)
    assert [c.ok for c in calls] == [True] * 6 + [False]
    await settle(app)
    await app.state.ctx.usage_recorder.flush()

    for group_by in ("day", "model", "api_key", "user"):
        body, rows = await report(client, account, group_by=group_by)
        assert body["group_by"] == group_by
        assert rows == expected(calls, group_by), group_by
    assert len(rows) == 2  # by user: the person, and the keys (no user)

    # The period by default; any window on request.
    _, day_one = await report(
        client,
        account,
        group_by="model",
        start=(start - timedelta(hours=1)).isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    )
    assert day_one == expected(calls[:4], "model")
    body, day_two = await report(
        client,
        account,
        group_by="api_key",
        start=(start + timedelta(hours=23)).isoformat(),
        end=(start + timedelta(days=2)).isoformat(),
    )
    assert day_two == expected(calls[4:], "api_key")
    assert datetime.fromisoformat(body["start"]) == start + timedelta(hours=23)

    # CSV: a header row, then the same numbers.
    csv_response = await client.get(
        "/v1/usage",
        params={"group_by": "model", "format": "csv"},
        headers=account.in_org(account.org_id),
    )
    assert csv_response.status_code == 200, csv_response.text
    assert csv_response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(csv_response.text)))
    assert lines[0] == [
        "model",
        "requests",
        "messages",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
        "overage_messages",
    ]
    names = lines[0][1:]
    from_csv = {line[0]: dict(zip(names, map(int, line[1:]), strict=True)) for line in lines[1:]}
    assert from_csv == expected(calls, "model")

    empty = await client.get(
        "/v1/usage",
        params={"format": "csv", "start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"},
        headers=account.in_org(account.org_id),
    )
    assert empty.status_code == 200
    assert empty.text.strip().splitlines() == [
        "day,requests,messages,prompt_tokens,completion_tokens,cost_micros,overage_messages"
    ]


async def test_a_report_needs_a_sensible_range(client: httpx.AsyncClient, account: Account) -> None:
    headers = account.in_org(account.org_id)

    async def get(**params: str) -> httpx.Response:
        return await client.get("/v1/usage", params=params, headers=headers)

    moment = "2026-03-01T00:00:00+00:00"
    same = await get(start=moment, end=moment)
    assert assert_error(same, 400, "invalid_request_error")["param"] == "end"
    backwards = await get(start=moment, end="2026-02-01T00:00:00+00:00")
    assert assert_error(backwards, 400, "invalid_request_error")["param"] == "end"
    too_long = await get(start="2024-01-01T00:00:00Z", end="2026-01-01T00:00:00Z")
    assert assert_error(too_long, 400, "invalid_request_error")["param"] == "start"
    assert_error(await get(start="2026-03-01T00:00:00"), 422, "invalid_request_error")
    assert_error(await get(start="yesterday"), 422, "invalid_request_error")
    assert_error(await get(group_by="week"), 422, "invalid_request_error")
    assert_error(await get(format="xml"), 422, "invalid_request_error")
