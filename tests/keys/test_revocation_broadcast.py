"""Revocation across processes: two apps over one PostgreSQL database and one Redis.

App B caches the key -> principal lookup; app A revokes; B must refuse the key within a
moment, long before its cache entry would expire (ttl 300 s), because the revoke is
broadcast over Redis pub/sub. Only the scale-out stack has several processes, so this
module pins `stack` to it instead of running on both.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from parley.app import create_app
from parley.config import Settings
from parley.context import AppContext
from parley.keys.models import ApiKey
from parley.kit.clock import utcnow
from tests.conftest import REDIS_URL
from tests.support import assert_error, bearer, create_key, register

CACHE_TTL_S = 300.0
DEADLINE_S = 2.0


@pytest.fixture
def stack() -> str:
    """This module needs PostgreSQL + Redis: several processes share nothing else."""
    return "scaleout"


@dataclass
class Process:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx


@pytest.fixture
async def two_processes(
    make_settings: Callable[..., Settings], pg_database: str, redis_cleanup: None
) -> AsyncIterator[tuple[Process, Process]]:
    """Apps A and B, each with its own engines, cache and lifespan, sharing DB and Redis."""
    async with AsyncExitStack() as exits:
        processes: list[Process] = []
        for name in ("a", "b"):
            settings = make_settings(
                database_url=pg_database,
                redis_url=REDIS_URL,
                key_cache_ttl_s=CACHE_TTL_S,
                run_worker=name == "a",
            )
            app = create_app(settings, configure_logs=False)
            await exits.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
            client = await exits.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{name}.parley.test")
            )
            processes.append(Process(app, client))
        a, b = processes
        assert a.ctx.key_cache is not b.ctx.key_cache
        assert a.ctx.backends.kind == b.ctx.backends.kind == "redis"
        yield a, b


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def test_revoke_in_one_process_is_refused_by_another(
    two_processes: tuple[Process, Process],
) -> None:
    a, b = two_processes
    owner = await register(a.client)
    key = await create_key(a.client, owner)
    silent = await create_key(a.client, owner)  # the control: revoked without a broadcast
    headers = bearer(key["key"])

    # B authenticates both keys and caches them.
    for secret in (key["key"], silent["key"]):
        response = await b.client.get("/v1/orgs", headers=bearer(secret))
        assert response.status_code == 200, response.text
        assert [o["id"] for o in response.json()["data"]] == [owner.org_id]
        cached = b.ctx.key_cache.get(key_hash(secret))
        assert cached is not None
        assert not cached.revoked

    # The control proves B answers from its cache: a revocation written to the database
    # behind its back (no broadcast) goes unnoticed until the ttl runs out.
    async with a.ctx.db.session() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == silent["id"]).values(revoked_at=utcnow())
        )
    assert (await b.client.get("/v1/orgs", headers=bearer(silent["key"]))).status_code == 200

    # A revokes the other key through the API: B refuses it within a moment.
    revoked = await a.client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    response = await b.client.get("/v1/orgs", headers=headers)
    while response.status_code == 200 and time.monotonic() - started < DEADLINE_S:
        await asyncio.sleep(0.02)
        response = await b.client.get("/v1/orgs", headers=headers)
    elapsed = time.monotonic() - started
    assert_error(response, 401, "authentication_error", "api_key_revoked")
    assert elapsed < DEADLINE_S < CACHE_TTL_S
    # Dropped from B's cache by the broadcast (then cached again as revoked).
    entry = b.ctx.key_cache.get(key_hash(key["key"]))
    assert entry is None or entry.revoked
    # A refuses it too, and the silently revoked control is still served from B's cache.
    assert_error(
        await a.client.get("/v1/orgs", headers=headers),
        401,
        "authentication_error",
        "api_key_revoked",
    )
    assert (await b.client.get("/v1/orgs", headers=bearer(silent["key"]))).status_code == 200


async def test_broadcast_drops_only_the_revoked_key(
    two_processes: tuple[Process, Process],
) -> None:
    a, b = two_processes
    owner = await register(b.client)
    keys = [await create_key(b.client, owner, scopes=["admin"]) for _ in range(2)]
    for key in keys:
        assert (await b.client.get("/v1/api-keys", headers=bearer(key["key"]))).is_success
        assert (await a.client.get("/v1/api-keys", headers=bearer(key["key"]))).is_success

    # Revoked by an API key (not a person) through B this time; A hears of it.
    doomed, kept = keys
    revoked = await b.client.delete(f"/v1/api-keys/{doomed['id']}", headers=bearer(kept["key"]))
    assert revoked.status_code == 200, revoked.text

    started = time.monotonic()
    while a.ctx.key_cache.get(key_hash(doomed["key"])) is not None:
        assert time.monotonic() - started < DEADLINE_S, "A never heard of the revocation"
        await asyncio.sleep(0.02)
    assert a.ctx.key_cache.get(key_hash(kept["key"])) is not None
    response = await a.client.get("/v1/api-keys", headers=bearer(doomed["key"]))
    assert_error(response, 401, "authentication_error", "api_key_revoked")
    assert (await a.client.get("/v1/api-keys", headers=bearer(kept["key"]))).is_success
