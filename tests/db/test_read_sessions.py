"""Reads do not wait for writers: authentication lookups, GET routes and the inference path
read in read-only units of work, which on SQLite start deferred and never take the write
lock. Writes still take it at BEGIN, and a read-only unit refuses to write."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from parley.accounts.models import User
from parley.config import Settings
from parley.db.engine import ReadOnlyViolation
from parley.orgs.models import Organization
from tests.support import bearer, create_key, register


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A reader that queued for the write lock would give up after 2 s (and answer a 500).
    pragmas = {**Settings().sqlite_pragmas, "busy_timeout": "2000"}
    return make_settings(sqlite_pragmas=pragmas)


async def test_reads_answer_while_a_write_is_in_progress(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    key = await create_key(client, owner, scopes=["conversations", "inference"])
    created = await client.post("/v1/conversations", json={"title": "Kept"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    before = (await client.get(f"/v1/orgs/{owner.org_id}", headers=owner.headers)).json()
    completion = {"model": "parley-mock", "messages": [{"role": "user", "content": "Hi"}]}
    # The first request of an organisation counts its quota from the ledger (a write unit).
    warm = await client.post("/v1/chat/completions", json=completion, headers=owner.headers)
    assert warm.status_code == 200, warm.text

    async with app.state.ctx.db.session() as writer:
        # A write in progress (on SQLite it holds the write lock until it commits).
        await writer.execute(
            update(Organization).where(Organization.id == owner.org_id).values(name="Renamed")
        )
        # A user's token (user and membership read) and a key never seen before (its row
        # read): both authenticate, and the GET routes answer.
        for headers in (owner.headers, bearer(key["key"])):
            listed = await client.get("/v1/conversations", headers=headers)
            assert listed.status_code == 200, listed.text
            assert [c["id"] for c in listed.json()["data"]] == [created.json()["id"]]
        org = await client.get(f"/v1/orgs/{owner.org_id}", headers=owner.headers)
        assert org.status_code == 200, org.text
        assert org.json()["name"] == before["name"]  # the write is not committed yet
        subscription = await client.get("/v1/billing/subscription", headers=owner.headers)
        assert subscription.status_code == 200, subscription.text
        # The inference path writes nothing on the way (usage is written in batches later).
        answered = await client.post(
            "/v1/chat/completions", json=completion, headers=bearer(key["key"])
        )
        assert answered.status_code == 200, answered.text

    renamed = await client.get(f"/v1/orgs/{owner.org_id}", headers=owner.headers)
    assert renamed.json()["name"] == "Renamed"


async def test_a_read_only_unit_of_work_refuses_to_write(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    account = await register(client, name="Ann")
    db = app.state.ctx.db
    async with db.read_session() as session:
        user = await session.scalar(select(User).where(User.id == account.user_id))
        assert user is not None
        user.name = "Changed"
        with pytest.raises(ReadOnlyViolation):
            await session.flush()
    async with db.read_session() as session:
        with pytest.raises(ReadOnlyViolation):
            await session.execute(
                update(User).where(User.id == account.user_id).values(name="Changed")
            )
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.json()["name"] == "Ann"
