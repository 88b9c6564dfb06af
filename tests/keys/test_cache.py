"""The key -> principal cache and the last-used tracker, driven directly."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from parley.backends.pubsub import MemoryPubSub
from parley.context import AppContext
from parley.db.engine import Database
from parley.errors import AuthenticationFailed
from parley.keys import repository
from parley.keys.cache import CachedKey, KeyCache, KeyUsageTracker
from parley.keys.models import ApiKey
from parley.kit.crypto import sha256_hex
from parley.orgs.roles import Scope
from tests.support import assert_error, bearer, create_key, register


def entry(key_id: str = "key_1", *, fetched_at: float | None = None) -> CachedKey:
    return CachedKey(
        key_id=key_id,
        org_id="org_1",
        scopes=frozenset({Scope.INFERENCE}),
        expires_at=None,
        revoked=False,
        fetched_at=time.monotonic() if fetched_at is None else fetched_at,
    )


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


async def test_entries_expire_after_ttl() -> None:
    cache = KeyCache(MemoryPubSub(), ttl_s=0.05)
    cache.put("h1", entry())
    assert cache.get("h1") is not None
    await asyncio.sleep(0.08)
    assert cache.get("h1") is None


async def test_cache_is_bounded() -> None:
    cache = KeyCache(MemoryPubSub(), ttl_s=60, max_entries=3)
    for i in range(3):
        cache.put(f"h{i}", entry(f"key_{i}"))
    assert all(cache.get(f"h{i}") is not None for i in range(3))
    cache.put("h3", entry("key_3"))
    assert cache.get("h3") is not None
    assert sum(cache.get(f"h{i}") is not None for i in range(4)) <= 3


async def test_entry_fetched_before_a_drop_is_not_kept() -> None:
    cache = KeyCache(MemoryPubSub(), ttl_s=60)
    before = time.monotonic()
    cache.drop("h1")
    cache.put("h1", entry(fetched_at=before))  # read before the revoke was announced
    assert cache.get("h1") is None
    cache.put("h2", entry("key_2", fetched_at=before))  # other keys are unaffected
    assert cache.get("h2") is not None
    cache.put("h1", entry())  # a lookup that began after the drop is kept
    assert cache.get("h1") is not None


async def test_clear_refuses_entries_fetched_before_it() -> None:
    cache = KeyCache(MemoryPubSub(), ttl_s=60)
    before = time.monotonic()
    cache.put("h1", entry(fetched_at=before))
    cache.clear()
    assert cache.get("h1") is None
    cache.put("h2", entry("key_2", fetched_at=before))
    assert cache.get("h2") is None
    cache.put("h2", entry("key_2"))
    assert cache.get("h2") is not None


async def test_drop_records_are_forgotten_after_ttl() -> None:
    cache = KeyCache(MemoryPubSub(), ttl_s=0.05)
    for i in range(100):
        cache.drop(f"h{i}")
    await asyncio.sleep(0.08)
    cache.drop("last")
    assert list(cache._dropped_at) == ["last"]


async def test_announced_revocation_reaches_every_subscriber() -> None:
    pubsub = MemoryPubSub()
    here, there = KeyCache(pubsub, ttl_s=60), KeyCache(pubsub, ttl_s=60)
    await here.start()
    await there.start()
    try:
        for cache in (here, there):
            cache.put("h1", entry("key_1"))
            cache.put("h2", entry("key_2"))
        await here.announce_revoked("h1")
        assert here.get("h1") is None  # at once, locally
        for _ in range(50):
            if there.get("h1") is None:
                break
            await asyncio.sleep(0.01)
        assert there.get("h1") is None
        assert here.get("h2") is not None
        assert there.get("h2") is not None
    finally:
        await here.stop()
        await there.stop()


async def test_broadcast_failure_still_drops_locally() -> None:
    class Broken(MemoryPubSub):
        async def publish(self, channel: str, message: bytes) -> None:
            raise ConnectionError("redis is down")

    cache = KeyCache(Broken(), ttl_s=60)
    cache.put("h1", entry())
    await cache.announce_revoked("h1")  # does not raise
    assert cache.get("h1") is None


async def test_failed_last_used_flush_keeps_the_keys_for_the_next(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    class Unreachable:
        def session(self) -> Any:
            raise ConnectionError("database went away")

    owner = await register(client)
    key = await create_key(client, owner)
    real_db = ctx_of(app).db
    tracker = KeyUsageTracker(cast(Database, Unreachable()), flush_s=60)
    tracker.touch(key["id"])
    await tracker.flush()  # fails quietly, keeps the key pending
    tracker.db = real_db
    await tracker.flush()
    async with real_db.session() as session:
        row = await session.get(ApiKey, key["id"])
    assert row is not None
    assert row.last_used_at is not None


async def test_lookup_racing_a_revocation_is_not_cached(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup that read the key just before its revocation was announced may answer once,
    but must not leave a "valid" entry in the cache for the rest of the ttl."""
    ctx = ctx_of(app)
    owner = await register(client)
    key = await create_key(client, owner)
    secret: str = key["key"]
    key_hash = sha256_hex(secret)

    real = repository.get_by_hash
    read = asyncio.Event()
    proceed = asyncio.Event()

    async def paused(session: AsyncSession, wanted: str) -> ApiKey | None:
        row = await real(session, wanted)
        read.set()
        await proceed.wait()
        return row

    monkeypatch.setattr(repository, "get_by_hash", paused)

    async def authenticate() -> Any:
        return await ctx.keys.authenticate(ctx.db, secret)

    inflight = asyncio.create_task(authenticate())
    await asyncio.wait_for(read.wait(), timeout=5)
    # The revoke commits elsewhere and is announced while the lookup is between its read
    # and its cache write.
    await ctx.key_cache.announce_revoked(key_hash)
    proceed.set()
    actor = await asyncio.wait_for(inflight, timeout=5)
    assert actor.api_key_id == key["id"]
    monkeypatch.setattr(repository, "get_by_hash", real)

    assert ctx.key_cache.get(key_hash) is None, "a stale, valid entry was cached"

    # With the row really revoked, the next request reads it again and is refused.
    revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    assert revoked.status_code == 200, revoked.text
    response = await client.get("/v1/orgs", headers=bearer(secret))
    assert_error(response, 401, "authentication_error", "api_key_revoked")


async def test_authenticate_reads_the_database_once_per_ttl(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ctx_of(app)
    owner = await register(client)
    key = await create_key(client, owner)
    real = repository.get_by_hash
    reads: list[str] = []

    async def counting(session: AsyncSession, wanted: str) -> ApiKey | None:
        reads.append(wanted)
        return await real(session, wanted)

    monkeypatch.setattr(repository, "get_by_hash", counting)
    for _ in range(5):
        assert (await client.get("/v1/orgs", headers=bearer(key["key"]))).status_code == 200
    assert reads == [sha256_hex(key["key"])]

    # Unknown keys are not cached as valid and keep failing.
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await ctx.keys.authenticate(ctx.db, "sk-parley-unknown")
    assert ctx.key_cache.get(sha256_hex("sk-parley-unknown")) is None
