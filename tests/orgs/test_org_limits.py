"""Creating organisations: the cap on free-plan organisations a person created or owns, and
the limit per client address; operators and `parley admin bootstrap` are not limited."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from parley.accounts.models import User
from parley.bootstrap import bootstrap
from parley.config import Settings
from parley.context import AppContext
from tests.accounts.conftest import AppFactory, ClientFactory
from tests.support import PASSWORD, Account, assert_error, join, register


async def create_org(client: httpx.AsyncClient, who: Account, name: str) -> httpx.Response:
    return await client.post("/v1/orgs", json={"name": name}, headers=who.headers)


async def created(client: httpx.AsyncClient, who: Account, name: str) -> str:
    response = await create_org(client, who, name)
    assert response.status_code == 201, response.text
    org_id: str = response.json()["id"]
    return org_id


def assert_free_limit(response: httpx.Response, allowed: int) -> None:
    error = assert_error(response, 409, "conflict_error", "free_org_limit_reached")
    assert f"({allowed})" in error["message"]
    assert "paid plan" in error["message"]
    assert "operator" in error["message"]


async def org_names(client: httpx.AsyncClient, who: Account) -> list[str]:
    response = await client.get("/v1/orgs", headers=who.headers)
    assert response.status_code == 200, response.text
    return sorted(o["name"] for o in response.json()["data"])


async def make_operator(app: FastAPI, who: Account) -> None:
    ctx: AppContext = app.state.ctx
    async with ctx.db.session() as session:
        await session.execute(
            update(User).where(User.id == who.user_id).values(is_platform_admin=True)
        )


async def put_on_plan(client: httpx.AsyncClient, operator: Account, org_id: str, plan: str) -> None:
    response = await client.put(
        f"/v1/admin/orgs/{org_id}/subscription", json={"plan": plan}, headers=operator.headers
    )
    assert response.status_code == 200, response.text


async def test_by_default_the_personal_organisation_is_the_only_free_one(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    assert Settings().max_free_orgs_per_user == 1
    client = await connect(await make_app(max_free_orgs_per_user=1))
    account = await register(client, name="Ann")
    assert_free_limit(await create_org(client, account, "Side project"), 1)
    assert await org_names(client, account) == ["Ann's organisation"]


async def test_organisations_on_a_paid_plan_do_not_count(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(max_free_orgs_per_user=1)
    client = await connect(app)
    account = await register(client, name="Ann")
    operator = await register(client)
    await make_operator(app, operator)
    await put_on_plan(client, operator, account.org_id, "starter")
    await created(client, account, "Team")  # on the free plan, as every new organisation
    assert_free_limit(await create_org(client, account, "Another"), 1)
    # Back on the free plan, the personal organisation counts again.
    await put_on_plan(client, operator, account.org_id, "free")
    assert_free_limit(await create_org(client, account, "Another"), 1)


async def test_memberships_of_other_peoples_organisations_do_not_count(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    client = await connect(await make_app(max_free_orgs_per_user=2))
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "admin")
    await created(client, member, "Mine")
    assert_free_limit(await create_org(client, member, "One more"), 2)
    # The inviting owner is as free as before to create their own.
    await created(client, owner, "Also mine")


async def test_handing_an_organisation_over_does_not_free_its_place(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    client = await connect(await make_app(max_free_orgs_per_user=2))
    founder = await register(client)
    team = await created(client, founder, "Team")
    heir = await join(client, founder, team, "owner")
    left = await client.delete(
        f"/v1/orgs/{team}/members/{founder.user_id}", headers=founder.headers
    )
    assert left.status_code == 204, left.text
    assert_free_limit(await create_org(client, founder, "Team again"), 2)
    # The new owner owns it, so it takes one of their places too.
    assert_free_limit(await create_org(client, heir, "Theirs"), 2)


async def test_concurrent_requests_cannot_both_take_the_last_place(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    client = await connect(await make_app(max_free_orgs_per_user=2))
    account = await register(client)
    answers = await asyncio.gather(*(create_org(client, account, f"Org {i}") for i in range(4)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
    assert len(await org_names(client, account)) == 2


async def test_operators_are_not_limited(make_app: AppFactory, connect: ClientFactory) -> None:
    app = await make_app(max_free_orgs_per_user=1, org_creation_limit_per_ip=1)
    client = await connect(app)
    operator = await register(client)
    await make_operator(app, operator)
    for name in ("For Acme", "For Globex", "For Initech"):
        await created(client, operator, name)


async def test_admin_bootstrap_is_not_limited(make_app: AppFactory, connect: ClientFactory) -> None:
    app = await make_app(max_free_orgs_per_user=1)
    client = await connect(app)
    account = await register(client, name="Ann")
    done = await bootstrap(app.state.ctx, email=account.email, password=PASSWORD, org_name="Acme")
    assert (done.user_id, done.org_created) == (account.user_id, True)
    assert await org_names(client, account) == ["Acme", "Ann's organisation"]


async def test_an_address_may_create_organisations_only_so_often(
    make_app: AppFactory, connect: ClientFactory
) -> None:
    app = await make_app(max_free_orgs_per_user=100, org_creation_limit_per_ip=2)
    office = await connect(app, "198.51.100.30")
    ann, bob = await register(office, name="Ann"), await register(office)
    await created(office, ann, "One")
    await created(office, bob, "Two")
    refused = await create_org(office, ann, "Three")
    error = assert_error(refused, 429, "rate_limit_error", "too_many_org_creations")
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert f"try again in {retry_after} seconds" in error["message"]
    assert_error(await create_org(office, bob, "Four"), 429, "rate_limit_error")
    # The same people from another address are not refused.
    home = await connect(app, "198.51.100.31")
    await created(home, ann, "Three")
    assert await org_names(office, ann) == ["Ann's organisation", "One", "Three"]
