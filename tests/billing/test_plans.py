"""Plans as sold, the config file's overrides, subscriptions and caps, seats, and the
operator's plan changes (API and `parley admin` commands)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from parley.accounts.models import User
from parley.billing.service import add_months
from parley.config import Settings
from tests.support import (
    Account,
    FakeClock,
    asgi_client,
    assert_error,
    join,
    register,
    running,
    unique_email,
)
from tests.test_cli import cli_env
from tests.usage.conftest import PREMIUM, chat, set_plan, write_config

ALL_TIERS = ["basic", "standard", "premium"]


@pytest.fixture
def plans_override() -> dict[str, dict[str, Any]]:
    """The config file's `plans:` section; empty keeps the seeded plans."""
    return {}


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    plans_override: dict[str, dict[str, Any]],
) -> Settings:
    config = write_config(tmp_path / "billing.yaml", plans_override)
    return make_settings(config=config, usage_flush_s=3600)


@pytest.fixture
async def account(client: httpx.AsyncClient) -> Account:
    return await register(client)


def limits(
    messages: int | None,
    rpm: int,
    tpm: int,
    seats: int | None,
    storage_mb: int | None,
    tiers: list[str],
    *,
    priority: bool,
    overage: bool,
) -> dict[str, Any]:
    return {
        "messages_per_period": messages,
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "seats": seats,
        "storage_mb": storage_mb,
        "model_tiers": tiers,
        "priority_routing": priority,
        "overage": overage,
    }


def plan(
    id_: str, name: str, monthly: int, annual: int, overage_price: int, limits: dict[str, Any]
) -> dict[str, Any]:
    return {
        "object": "plan",
        "id": id_,
        "name": name,
        "currency": "USD",
        "monthly_price_micros": monthly,
        "annual_price_micros": annual,
        "overage_price_micros_per_message": overage_price,
        "limits": limits,
    }


ENTERPRISE_LIMITS = limits(
    None, 1_000, 5_000_000, None, None, [*ALL_TIERS, "custom"], priority=True, overage=True
)
SEEDED = [
    plan(
        "free", "Free", 0, 0, 0,
        limits(1_000, 20, 40_000, 1, 5, ["basic"], priority=False, overage=False),
    ),
    plan(
        "starter", "Starter", 29_000_000, 290_000_000, 4_000,
        limits(10_000, 60, 200_000, 3, 100, ALL_TIERS, priority=False, overage=True),
    ),
    plan(
        "professional", "Professional", 99_000_000, 990_000_000, 2_000,
        limits(100_000, 300, 1_000_000, 10, 1_024, ALL_TIERS, priority=True, overage=True),
    ),
    plan("enterprise", "Enterprise", 299_000_000, 2_990_000_000, 0, ENTERPRISE_LIMITS),
    plan("custom", "Custom", 0, 0, 0, ENTERPRISE_LIMITS),
]  # fmt: skip


async def plans(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/billing/plans")  # no credentials needed
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["object"] == "list"
    assert body["has_more"] is False
    data: list[dict[str, Any]] = body["data"]
    return data


async def subscription(client: httpx.AsyncClient, account: Account, org_id: str) -> httpx.Response:
    return await client.get("/v1/billing/subscription", headers=account.in_org(org_id))


# --- plans ------------------------------------------------------------------------------------


async def test_the_plans_on_offer_are_the_seeded_table(client: httpx.AsyncClient) -> None:
    assert await plans(client) == SEEDED


@pytest.mark.parametrize(
    "plans_override",
    [{"starter": {"messages": 20_000, "rpm": 120, "monthly_micros": 25_000_000}}],
)
async def test_the_config_file_overrides_a_plan(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    offered = {p["id"]: p for p in await plans(client)}
    starter = offered["starter"]
    assert starter["monthly_price_micros"] == 25_000_000
    assert starter["annual_price_micros"] == 290_000_000
    assert starter["limits"]["messages_per_period"] == 20_000
    assert starter["limits"]["requests_per_minute"] == 120
    assert starter["limits"]["tokens_per_minute"] == 200_000
    assert [p for p in offered.values() if p["id"] != "starter"] == [
        p for p in SEEDED if p["id"] != "starter"
    ]

    await set_plan(app, account.org_id, "starter")
    mine = await subscription(client, account, account.org_id)
    assert mine.json()["limits"]["messages_per_period"] == 20_000


# --- subscriptions ----------------------------------------------------------------------------


async def test_new_organisations_start_on_the_free_plan(
    client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    response = await subscription(client, account, account.org_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "subscription"
    assert body["org_id"] == account.org_id
    assert body["plan"] == SEEDED[0]
    assert body["limits"] == SEEDED[0]["limits"]
    assert (body["interval"], body["status"]) == ("month", "active")
    assert (body["message_cap"], body["spending_cap_micros"]) == (None, None)
    start = datetime.fromisoformat(body["current_period_start"])
    assert abs((start - clock()).total_seconds()) < 5
    assert datetime.fromisoformat(body["current_period_end"]) == add_months(start, 1)

    created = await client.post("/v1/orgs", json={"name": "Second"}, headers=account.headers)
    assert created.status_code == 201, created.text
    second = await subscription(client, account, created.json()["id"])
    assert second.json()["plan"]["id"] == "free"

    stranger = await register(client)
    hidden = await subscription(client, stranger, account.org_id)
    assert_error(hidden, 404, "not_found_error")


async def test_admins_set_their_own_caps_and_others_may_not(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    async def patch(who: Account, body: dict[str, Any]) -> httpx.Response:
        return await client.patch(
            "/v1/billing/subscription", json=body, headers=who.in_org(account.org_id)
        )

    first = await patch(account, {"message_cap": 500})
    assert first.status_code == 200, first.text
    assert (first.json()["message_cap"], first.json()["spending_cap_micros"]) == (500, None)
    second = await patch(account, {"spending_cap_micros": 5_000_000})
    assert (second.json()["message_cap"], second.json()["spending_cap_micros"]) == (
        500,
        5_000_000,
    ), "a cap left out of a PATCH stays"
    cleared = await patch(account, {"message_cap": None})
    assert (cleared.json()["message_cap"], cleared.json()["spending_cap_micros"]) == (
        None,
        5_000_000,
    )
    read = (await subscription(client, account, account.org_id)).json()
    assert (read["message_cap"], read["spending_cap_micros"]) == (None, 5_000_000)

    assert_error(await patch(account, {"message_cap": -1}), 422, "invalid_request_error")
    assert_error(await patch(account, {"plan": "enterprise"}), 422, "invalid_request_error")

    await set_plan(app, account.org_id, "starter")  # room for a second member
    member = await join(client, account, account.org_id, "member")
    assert_error(await patch(member, {"message_cap": 1}), 403, "permission_error")
    assert (await subscription(client, member, account.org_id)).status_code == 200


# --- seats ------------------------------------------------------------------------------------


async def test_seats_count_members_and_open_invitations(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    async def invite(email: str) -> httpx.Response:
        return await client.post(
            f"/v1/orgs/{account.org_id}/invitations",
            json={"email": email, "role": "member"},
            headers=account.headers,
        )

    refused = await invite(unique_email("second"))
    error = assert_error(refused, 409, "conflict_error", "seat_limit_reached")
    assert "Free plan includes 1 seat" in error["message"]

    await set_plan(app, account.org_id, "starter")
    joined = await join(client, account, account.org_id, "member")
    open_invitation = await invite(unique_email("third"))
    assert open_invitation.status_code == 201, open_invitation.text
    full = await invite(unique_email("fourth"))
    error = assert_error(full, 409, "conflict_error", "seat_limit_reached")
    assert "2 member(s) and 1 open invitation(s)" in error["message"]

    revoked = await client.delete(
        f"/v1/orgs/{account.org_id}/invitations/{open_invitation.json()['id']}",
        headers=account.headers,
    )
    assert revoked.status_code in (200, 204), revoked.text
    assert (await invite(unique_email("fifth"))).status_code == 201
    removed = await client.delete(
        f"/v1/orgs/{account.org_id}/members/{joined.user_id}", headers=account.headers
    )
    assert removed.status_code in (200, 204), removed.text
    assert (await invite(unique_email("sixth"))).status_code == 201


# --- the operator -----------------------------------------------------------------------------


async def make_operator(app: FastAPI, user_id: str) -> None:
    async with app.state.ctx.db.session() as session:
        await session.execute(update(User).where(User.id == user_id).values(is_platform_admin=True))


async def test_only_platform_operators_change_plans(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    secret = str(
        (
            await client.post(
                "/v1/api-keys",
                json={"name": "k", "scopes": ["inference"]},
                headers=account.in_org(account.org_id),
            )
        ).json()["key"]
    )
    path = f"/v1/admin/orgs/{account.org_id}/subscription"
    denied = await client.put(path, json={"plan": "starter"}, headers=account.headers)
    assert_error(denied, 403, "permission_error", "operator_only")
    assert_error(await chat(client, secret, PREMIUM), 403, "permission_error", "model_not_allowed")

    operator = await register(client)
    await make_operator(app, operator.user_id)
    changed = await client.put(path, json={"plan": "starter"}, headers=operator.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"]["id"] == "starter"
    assert (await chat(client, secret, PREMIUM)).status_code == 200, "at once"

    custom = await client.put(
        path,
        json={"plan": "custom", "messages": 5, "rpm": 7, "interval": "year"},
        headers=operator.headers,
    )
    assert custom.status_code == 200, custom.text
    assert custom.json()["interval"] == "year"
    expected = ENTERPRISE_LIMITS | {"messages_per_period": 5, "requests_per_minute": 7}
    assert custom.json()["limits"] == expected
    seen = (await subscription(client, account, account.org_id)).json()
    assert (seen["plan"]["id"], seen["limits"]) == ("custom", expected)

    limited = await client.put(
        path, json={"plan": "starter", "messages": 5}, headers=operator.headers
    )
    assert_error(limited, 400, "invalid_request_error", "limits_need_custom_plan")
    unknown_plan = await client.put(path, json={"plan": "gold"}, headers=operator.headers)
    assert_error(unknown_plan, 404, "not_found_error", "plan_not_found")
    nowhere = await client.put(
        "/v1/admin/orgs/org_01aaaaaaaaaaaaaaaaaaaaaaaa/subscription",
        json={"plan": "starter"},
        headers=operator.headers,
    )
    assert_error(nowhere, 404, "not_found_error")


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley",
        "admin",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["embedded"])
async def test_the_admin_command_sets_a_plan(
    make_settings: Callable[..., Settings], tmp_path: Path, clock: FakeClock, sqlite_template: Path
) -> None:
    data_dir = tmp_path / "cli-data"  # the embedded default: data_dir/parley.db
    data_dir.mkdir()
    shutil.copyfile(sqlite_template, data_dir / "parley.db")
    settings = make_settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'parley.db'}",
        config=write_config(tmp_path / "billing.yaml", {}),
    )
    async with running(settings, clock) as app, asgi_client(app) as client:
        owner = await register(client)
        other = await register(client)
        env = cli_env(data_dir)
        (custom, _, failure), (refused, _, refusal) = await asyncio.gather(
            cli(env, "set-plan", owner.org_id, "custom", "--messages", "5", "--rpm", "7"),
            cli(env, "set-plan", other.org_id, "starter", "--messages", "5"),
        )
        assert custom == 0, failure
        assert refused == 2, refusal
        assert "only on the custom plan" in refusal

        seen = (await subscription(client, owner, owner.org_id)).json()
        assert seen["plan"]["id"] == "custom"
        assert seen["limits"] == ENTERPRISE_LIMITS | {
            "messages_per_period": 5,
            "requests_per_minute": 7,
        }, "the flags left out keep the enterprise values"
        assert (await subscription(client, other, other.org_id)).json()["plan"]["id"] == "free"
