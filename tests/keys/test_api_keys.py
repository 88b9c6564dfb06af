"""API keys over HTTP: created once with the secret, listed without it, stored as a SHA-256
hash, authenticating in their own organisation, expiring and revoked at once."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from parley.context import AppContext
from parley.db.models import Base
from parley.keys.models import ApiKey
from tests.support import (
    Account,
    FakeClock,
    assert_error,
    bearer,
    create_key,
    join,
    register,
)

# What every key object carries (more, such as limits, may be added); never the secret.
KEY_FIELDS = {
    "object",
    "id",
    "org_id",
    "name",
    "prefix",
    "scopes",
    "created_by",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
}


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value!r} has no time zone"
    return parsed


async def stored_key(app: FastAPI, key_id: str) -> ApiKey:
    async with ctx_of(app).db.session() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    assert row is not None
    return row


async def every_stored_value(app: FastAPI) -> str:
    """Every row of every table, as one string: to prove a secret is stored nowhere."""
    parts: list[str] = []
    async with ctx_of(app).db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


async def new_org(client: httpx.AsyncClient, owner: Account, name: str = "Second") -> str:
    response = await client.post("/v1/orgs", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    org_id: str = response.json()["id"]
    return org_id


# --- create, list, get ------------------------------------------------------------------------


async def test_create_returns_secret_once_with_metadata(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    owner = await register(client)
    response = await client.post(
        "/v1/api-keys",
        json={"name": "  CI deploys  ", "scopes": ["knowledge", "inference", "inference"]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert KEY_FIELDS | {"key"} <= set(body)
    assert body["object"] == "api_key"
    assert body["id"].startswith("key_")
    assert body["org_id"] == owner.org_id
    assert body["name"] == "CI deploys"
    assert body["scopes"] == ["inference", "knowledge"]  # deduplicated, sorted
    assert body["created_by"] == owner.user_id
    assert parse_time(body["created_at"]) == clock.now
    assert body["last_used_at"] is None
    assert body["expires_at"] is None
    assert body["revoked_at"] is None

    secret: str = body["key"]
    assert secret.startswith("sk-parley-")
    assert len(secret) >= len("sk-parley-") + 43  # 32 random bytes, url-safe base64
    assert body["prefix"] == secret[: len(body["prefix"])]
    assert len(body["prefix"]) == len("sk-parley-") + 8
    assert body["prefix"] != secret


async def test_secret_is_never_returned_again(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    created = await create_key(client, owner, scopes=["admin"])
    secret = created["key"]
    tail = secret[len(created["prefix"]) :]

    listed = await client.get("/v1/api-keys", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    one = await client.get(f"/v1/api-keys/{created['id']}", headers=owner.headers)
    assert one.status_code == 200, one.text
    via_key = await client.get("/v1/api-keys", headers=bearer(secret))
    assert via_key.status_code == 200, via_key.text
    for response in (listed, one, via_key):
        assert tail not in response.text
        assert '"key"' not in response.text

    assert set(one.json()) >= KEY_FIELDS
    assert "key" not in one.json()
    expected = {k: v for k, v in created.items() if k != "key"}
    assert one.json() == expected
    [item] = listed.json()["data"]
    assert set(item) >= KEY_FIELDS
    assert "key" not in item
    assert item == expected


async def test_stored_as_sha256_and_plaintext_nowhere(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    created = await create_key(client, owner, scopes=["inference", "admin"])
    secret: str = created["key"]
    # Use it, so last-used tracking and audit rows exist too.
    assert (await client.get("/v1/orgs", headers=bearer(secret))).status_code == 200
    await ctx_of(app).key_usage.flush()

    row = await stored_key(app, created["id"])
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == created["prefix"]
    assert row.org_id == owner.org_id
    for column in ApiKey.__table__.columns:
        value = str(getattr(row, column.key))
        assert secret not in value, column.key
        assert secret[len(row.prefix) :] not in value, column.key

    everything = await every_stored_value(app)
    assert row.key_hash in everything
    assert secret not in everything
    assert secret[len(row.prefix) :] not in everything


async def test_list_newest_first_paginated_and_scoped_to_org(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    other = await register(client)
    ids = [(await create_key(client, owner, name=f"k{i}"))["id"] for i in range(3)]
    await create_key(client, other)

    page = await client.get("/v1/api-keys", params={"limit": 2}, headers=owner.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["object"] == "list"
    assert [k["id"] for k in body["data"]] == [ids[2], ids[1]]
    assert body["has_more"] is True
    assert body["first_id"] == ids[2]
    assert body["last_id"] == ids[1]

    rest = await client.get(
        "/v1/api-keys", params={"limit": 2, "after": body["last_id"]}, headers=owner.headers
    )
    assert rest.status_code == 200, rest.text
    assert [k["id"] for k in rest.json()["data"]] == [ids[0]]
    assert rest.json()["has_more"] is False
    assert [k["name"] for k in rest.json()["data"]] == ["k0"]


async def test_org_header_selects_the_org(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    second = await new_org(client, owner)
    in_default = await create_key(client, owner)
    in_second = await create_key(client, owner, org_id=second)
    assert in_second["org_id"] == second

    default_list = await client.get("/v1/api-keys", headers=owner.headers)
    second_list = await client.get("/v1/api-keys", headers=owner.in_org(second))
    assert [k["id"] for k in default_list.json()["data"]] == [in_default["id"]]
    assert [k["id"] for k in second_list.json()["data"]] == [in_second["id"]]

    # The key of one org is not found through the other.
    missing = await client.get(f"/v1/api-keys/{in_second['id']}", headers=owner.headers)
    assert_error(missing, 404, "not_found_error", "api_key_not_found")


async def test_another_tenants_key_is_404(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    stranger = await register(client)
    key = await create_key(client, owner)

    for response in (
        await client.get(f"/v1/api-keys/{key['id']}", headers=stranger.headers),
        await client.delete(f"/v1/api-keys/{key['id']}", headers=stranger.headers),
    ):
        assert_error(response, 404, "not_found_error", "api_key_not_found")
    # Naming the owner's org in the header does not help either.
    foreign = await client.get("/v1/api-keys", headers=stranger.in_org(owner.org_id))
    assert_error(foreign, 404, "not_found_error", "org_not_found")
    # And the key still works.
    assert (await client.get("/v1/orgs", headers=bearer(key["key"]))).status_code == 200
    # An id that exists nowhere answers the same.
    for response in (
        await client.get("/v1/api-keys/key_doesnotexist", headers=owner.headers),
        await client.delete("/v1/api-keys/key_doesnotexist", headers=owner.headers),
    ):
        assert_error(response, 404, "not_found_error", "api_key_not_found")


async def test_members_without_admin_rights_cannot_manage_keys(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    key = await create_key(client, owner)
    for role in ("member", "viewer"):
        member = await join(client, owner, owner.org_id, role)
        headers = member.in_org(owner.org_id)
        for response in (
            await client.post("/v1/api-keys", json={"name": "mine"}, headers=headers),
            await client.get("/v1/api-keys", headers=headers),
            await client.get(f"/v1/api-keys/{key['id']}", headers=headers),
            await client.delete(f"/v1/api-keys/{key['id']}", headers=headers),
        ):
            assert_error(response, 403, "permission_error", "insufficient_permissions")
    assert (await client.get("/v1/orgs", headers=bearer(key["key"]))).status_code == 200


async def test_org_admin_can_manage_keys(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    admin = await join(client, owner, owner.org_id, "admin")
    created = await create_key(client, admin, org_id=owner.org_id)
    assert created["created_by"] == admin.user_id
    revoked = await client.delete(f"/v1/api-keys/{created['id']}", headers=owner.headers)
    assert revoked.status_code == 200, revoked.text


# --- authentication -----------------------------------------------------------------------------


async def test_key_acts_in_exactly_its_own_org(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    second = await new_org(client, owner, name="Acme")
    key = await create_key(client, owner, org_id=second)

    as_user = await client.get("/v1/orgs", headers=owner.headers)
    assert {o["id"] for o in as_user.json()["data"]} == {owner.org_id, second}

    as_key = await client.get("/v1/orgs", headers=bearer(key["key"]))
    assert as_key.status_code == 200, as_key.text
    body = as_key.json()
    assert [o["id"] for o in body["data"]] == [second]
    assert body["data"][0]["name"] == "Acme"
    assert body["has_more"] is False


async def test_admin_key_manages_keys_of_its_org_only(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    second = await new_org(client, owner)
    admin_key = await create_key(client, owner, scopes=["admin", "inference"])
    other = await create_key(client, owner, scopes=["inference"])
    await create_key(client, owner, org_id=second)
    headers = bearer(admin_key["key"])

    listed = await client.get("/v1/api-keys", headers=headers)
    assert listed.status_code == 200, listed.text
    assert {k["id"] for k in listed.json()["data"]} == {admin_key["id"], other["id"]}
    assert (await client.get(f"/v1/api-keys/{other['id']}", headers=headers)).status_code == 200
    # It cannot reach over into another organisation, even one its creator owns.
    elsewhere = await client.get("/v1/api-keys", headers=bearer(admin_key["key"], second))
    assert_error(elsewhere, 404, "not_found_error", "org_not_found")

    made = await client.post(
        "/v1/api-keys", json={"name": "from key", "scopes": ["inference"]}, headers=headers
    )
    assert made.status_code == 201, made.text
    assert made.json()["org_id"] == owner.org_id
    assert made.json()["created_by"] == admin_key["id"]


async def test_a_key_creates_keys_only_within_its_own_scopes(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    admin_only = bearer((await create_key(client, owner, scopes=["admin"]))["key"])
    wider = await client.post(
        "/v1/api-keys",
        json={"name": "wider", "scopes": ["admin", "knowledge", "inference"]},
        headers=admin_only,
    )
    error = assert_error(wider, 403, "permission_error", "scopes_exceed_own")
    assert error["param"] == "scopes"
    assert "lacks inference, knowledge." in error["message"]
    assert "(admin)" in error["message"]
    same = await client.post(
        "/v1/api-keys", json={"name": "same", "scopes": ["admin"]}, headers=admin_only
    )
    assert same.status_code == 201, same.text

    broad = bearer(
        (await create_key(client, owner, scopes=["admin", "inference", "knowledge"]))["key"]
    )
    narrower = await client.post(
        "/v1/api-keys", json={"name": "narrower", "scopes": ["knowledge"]}, headers=broad
    )
    assert narrower.status_code == 201, narrower.text
    assert narrower.json()["scopes"] == ["knowledge"]
    # The refused key was never made; a person with the right role may grant any scopes.
    listed = await client.get("/v1/api-keys", headers=owner.headers)
    assert "wider" not in {k["name"] for k in listed.json()["data"]}
    everything = await create_key(
        client, owner, scopes=["admin", "conversations", "inference", "knowledge"]
    )
    assert everything["created_by"] == owner.user_id


async def test_inference_key_cannot_manage_keys(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    key = await create_key(client, owner, scopes=["inference", "conversations", "knowledge"])
    headers = bearer(key["key"])
    for response in (
        await client.get("/v1/api-keys", headers=headers),
        await client.get(f"/v1/api-keys/{key['id']}", headers=headers),
        await client.post("/v1/api-keys", json={"name": "x"}, headers=headers),
        await client.delete(f"/v1/api-keys/{key['id']}", headers=headers),
    ):
        assert_error(response, 403, "permission_error", "insufficient_permissions")
    # The failed revoke changed nothing.
    assert (await client.get("/v1/orgs", headers=headers)).status_code == 200


async def test_key_cannot_use_person_only_routes(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    key = await create_key(client, owner, scopes=["admin"])
    response = await client.get("/v1/users/me", headers=bearer(key["key"]))
    assert_error(response, 403, "permission_error", "user_token_required")


async def test_unknown_tampered_or_missing_key_is_401(client: httpx.AsyncClient) -> None:
    for token in ("sk-parley-", "sk-parley-not-a-real-key", "sk-parley-" + "A" * 43):
        response = await client.get("/v1/orgs", headers=bearer(token))
        assert_error(response, 401, "authentication_error", "invalid_api_key")
    for response in (
        await client.get("/v1/api-keys"),
        await client.post("/v1/api-keys", json={"name": "k"}),
    ):
        assert_error(response, 401, "authentication_error", "missing_credentials")

    owner = await register(client)
    secret: str = (await create_key(client, owner))["key"]
    last = "A" if secret[-1] != "A" else "B"
    for token in (secret[:-1] + last, secret[:-1], secret + "x"):
        response = await client.get("/v1/orgs", headers=bearer(token))
        assert_error(response, 401, "authentication_error", "invalid_api_key")


async def test_expired_key_is_rejected(client: httpx.AsyncClient, clock: FakeClock) -> None:
    owner = await register(client)
    expires = clock.now + timedelta(minutes=5)
    key = await create_key(client, owner, expires_at=expires.isoformat())
    assert parse_time(key["expires_at"]) == expires
    headers = bearer(key["key"])

    assert (await client.get("/v1/orgs", headers=headers)).status_code == 200  # now cached
    clock.advance(minutes=4, seconds=59)
    assert (await client.get("/v1/orgs", headers=headers)).status_code == 200
    clock.advance(seconds=1)
    response = await client.get("/v1/orgs", headers=headers)
    error = assert_error(response, 401, "authentication_error", "api_key_expired")
    assert "expired" in error["message"]
    # Still listed (expiry is not revocation), with its expiry.
    listed = await client.get("/v1/api-keys", headers=owner.headers)
    [item] = listed.json()["data"]
    assert item["id"] == key["id"]
    assert item["revoked_at"] is None
    assert parse_time(item["expires_at"]) == expires


async def test_expires_at_with_offset_is_stored_as_utc(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    owner = await register(client)
    when = (clock.now + timedelta(days=30)).astimezone(timezone(timedelta(hours=5, minutes=30)))
    key = await create_key(client, owner, expires_at=when.isoformat())
    again = await client.get(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    # Times leave in UTC (DESIGN.md section 3), on creation as when read back.
    for body in (key, again.json()):
        stored = parse_time(body["expires_at"])
        assert stored == when
        assert stored.utcoffset() == timedelta(0), body["expires_at"]
    assert key["expires_at"] == again.json()["expires_at"]


async def test_last_used_at_is_recorded_after_use(
    client: httpx.AsyncClient, app: FastAPI, clock: FakeClock
) -> None:
    assert ctx_of(app).settings.key_last_used_flush_s == 0.1
    owner = await register(client)
    key = await create_key(client, owner, scopes=["admin"])
    unused = await create_key(client, owner)
    assert key["last_used_at"] is None

    clock.advance(minutes=3)
    used_at = clock.now
    assert (await client.get("/v1/orgs", headers=bearer(key["key"]))).status_code == 200

    item: dict[str, Any] = {}
    for _ in range(40):  # the tracker flushes every 0.1 s
        response = await client.get(f"/v1/api-keys/{key['id']}", headers=owner.headers)
        item = response.json()
        if item["last_used_at"] is not None:
            break
        await asyncio.sleep(0.05)
    assert item["last_used_at"] is not None, "last_used_at was never recorded"
    assert parse_time(item["last_used_at"]) == used_at
    assert (await stored_key(app, unused["id"])).last_used_at is None


async def test_last_used_flush_writes_every_touched_key(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """One flush writes every key touched since the last; nothing pending means no write."""
    owner = await register(client)
    keys = [await create_key(client, owner) for _ in range(3)]
    tracker = ctx_of(app).key_usage
    for key in keys:
        tracker.touch(key["id"])
        tracker.touch(key["id"])
    await tracker.flush()
    for key in keys:
        assert (await stored_key(app, key["id"])).last_used_at is not None
    await tracker.flush()  # nothing pending: a no-op


# --- revocation ---------------------------------------------------------------------------------


async def test_revoke_stops_the_key_at_once(client: httpx.AsyncClient, clock: FakeClock) -> None:
    owner = await register(client)
    key = await create_key(client, owner)
    keep = await create_key(client, owner)
    headers = bearer(key["key"])
    # Authenticated twice: the second time from the cache.
    assert (await client.get("/v1/orgs", headers=headers)).status_code == 200
    assert (await client.get("/v1/orgs", headers=headers)).status_code == 200

    clock.advance(seconds=10)
    revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    assert revoked.status_code == 200, revoked.text
    body = revoked.json()
    assert set(body) >= KEY_FIELDS
    assert "key" not in body
    assert body["id"] == key["id"]
    assert parse_time(body["revoked_at"]) == clock.now

    response = await client.get("/v1/orgs", headers=headers)
    error = assert_error(response, 401, "authentication_error", "api_key_revoked")
    assert "revoked" in error["message"]
    # The other key is untouched.
    assert (await client.get("/v1/orgs", headers=bearer(keep["key"]))).status_code == 200

    active = await client.get("/v1/api-keys", headers=owner.headers)
    assert [k["id"] for k in active.json()["data"]] == [keep["id"]]
    everything = await client.get(
        "/v1/api-keys", params={"include_revoked": "true"}, headers=owner.headers
    )
    listed = {k["id"]: k for k in everything.json()["data"]}
    assert set(listed) == {key["id"], keep["id"]}
    assert listed[key["id"]]["revoked_at"] is not None
    assert listed[keep["id"]]["revoked_at"] is None
    one = await client.get(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    assert one.status_code == 200
    assert one.json()["revoked_at"] == body["revoked_at"]


async def test_revoke_drops_the_cached_entry(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    key = await create_key(client, owner)
    key_hash = hashlib.sha256(key["key"].encode()).hexdigest()
    cache = ctx_of(app).key_cache
    assert cache.get(key_hash) is None
    assert (await client.get("/v1/orgs", headers=bearer(key["key"]))).status_code == 200
    cached = cache.get(key_hash)
    assert cached is not None
    assert not cached.revoked

    assert (await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)).is_success
    entry = cache.get(key_hash)
    assert entry is None or entry.revoked
    response = await client.get("/v1/orgs", headers=bearer(key["key"]))
    assert_error(response, 401, "authentication_error", "api_key_revoked")


async def test_revoke_twice_is_409(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    key = await create_key(client, owner)
    first = await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    assert first.status_code == 200
    again = await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    error = assert_error(again, 409, "conflict_error", "api_key_revoked")
    assert key["id"] in error["message"]
    one = await client.get(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    assert one.json()["revoked_at"] == first.json()["revoked_at"]


async def test_admin_key_can_revoke_itself(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    key = await create_key(client, owner, scopes=["admin"])
    headers = bearer(key["key"])
    response = await client.delete(f"/v1/api-keys/{key['id']}", headers=headers)
    assert response.status_code == 200, response.text
    after = await client.get("/v1/api-keys", headers=headers)
    assert_error(after, 401, "authentication_error", "api_key_revoked")


async def test_create_and_revoke_are_audited(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    key = await create_key(client, owner)
    await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
    response = await client.get(f"/v1/orgs/{owner.org_id}/audit-log", headers=owner.headers)
    assert response.status_code == 200, response.text
    events = [e for e in response.json()["data"] if e.get("target_id") == key["id"]]
    assert sorted(e["action"] for e in events) == ["api_key.created", "api_key.revoked"]
    assert key["key"] not in response.text


# --- validation -----------------------------------------------------------------------------------


BAD_INPUT: list[tuple[dict[str, Any], int, str]] = [
    ({"name": "k", "scopes": []}, 422, "scopes"),
    ({"name": "k", "scopes": ["superuser"]}, 422, "scopes.0"),
    ({"name": "k", "scopes": ["inference", "root"]}, 422, "scopes.1"),
    ({"name": "k", "scopes": "inference"}, 422, "scopes"),
    ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, 400, "expires_at"),
    ({"name": "k", "expires_at": "2999-01-01T00:00:00"}, 422, "expires_at"),  # no time zone
    ({"name": "k", "expires_at": "next tuesday"}, 422, "expires_at"),
    ({"name": "x" * 201}, 422, "name"),
    ({"name": ""}, 422, "name"),
    ({"name": "   "}, 400, "name"),
    ({"scopes": ["inference"]}, 422, "name"),
    ({"name": "k", "key": "sk-parley-mine"}, 422, "key"),
]


async def test_bad_input_is_rejected_with_param(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    owner = await register(client)
    now = ({"name": "k", "expires_at": clock.now.isoformat()}, 400, "expires_at")
    for payload, status, param in [*BAD_INPUT, now]:
        response = await client.post("/v1/api-keys", json=payload, headers=owner.headers)
        error = assert_error(response, status, "invalid_request_error")
        assert error["param"] == param, (payload, error)
        if param == "expires_at" and status == 400:
            assert "future" in error["message"]
    listed = await client.get("/v1/api-keys", headers=owner.headers)
    assert listed.json()["data"] == []


async def test_defaults_and_limits(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    response = await client.post("/v1/api-keys", json={"name": "default"}, headers=owner.headers)
    assert response.status_code == 201, response.text
    assert response.json()["scopes"] == ["inference"]
    assert response.json()["expires_at"] is None
    longest = await create_key(client, owner, name="n" * 200)
    assert longest["name"] == "n" * 200
    every = await create_key(client, owner, scopes=["admin", "knowledge", "conversations"])
    assert every["scopes"] == ["admin", "conversations", "knowledge"]
