"""Conversations with memory: the thread is stored, replies come through the gateway."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from parley.usage.models import UsageEvent
from tests.support import Account, assert_error, bearer, create_key, join, register

MODEL = "parley-mock"


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/conversations", json={"model": MODEL, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def say(
    client: httpx.AsyncClient, headers: dict[str, str], conv_id: str, text: str
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/conversations/{conv_id}/messages", json={"content": text}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_two_exchanges_build_a_chained_branch_and_meter_usage(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, title="Trip", system_prompt="Be brief.")
    assert conv["id"].startswith("conv_")
    assert conv["current_leaf_id"] is None

    first = await say(client, owner.headers, conv["id"], "Hello there")
    assert first["assistant_message"]["content"] == "Mock reply: Hello there"
    second = await say(client, owner.headers, conv["id"], "And again")
    assert second["assistant_message"]["content"] == "Mock reply: And again"
    reply = second["assistant_message"]
    assert reply["model"] == MODEL
    assert reply["status"] == "complete"
    assert reply["prompt_tokens"] > 0
    assert reply["completion_tokens"] > 0

    listed = await client.get(f"/v1/conversations/{conv['id']}/messages", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    messages = listed.json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in messages] == [
        "Hello there",
        "Mock reply: Hello there",
        "And again",
        "Mock reply: And again",
    ]
    assert all(m["id"].startswith("msg_") for m in messages)
    assert messages[0]["parent_id"] is None
    for parent, child in itertools.pairwise(messages):
        assert child["parent_id"] == parent["id"]

    got = await client.get(f"/v1/conversations/{conv['id']}", headers=owner.headers)
    assert got.json()["current_leaf_id"] == messages[-1]["id"]

    ctx = app.state.ctx
    await ctx.usage_recorder.flush()
    async with ctx.db.session() as session:
        events = list(
            await session.scalars(select(UsageEvent).where(UsageEvent.org_id == owner.org_id))
        )
    assert len(events) == 2
    assert all(e.messages == 1 and e.status == "ok" and e.model == MODEL for e in events)
    assert all(e.user_id == owner.user_id for e in events)
    # The second exchange carried the first as context: its prompt is longer.
    assert sorted(e.prompt_tokens for e in events)[1] == reply["prompt_tokens"]
    assert reply["prompt_tokens"] > first["assistant_message"]["prompt_tokens"]


async def test_list_get_patch_delete(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    alpha = await create(client, owner.headers, title="Alpha plans", metadata={"k": "v"})
    beta = await create(client, owner.headers, title="Beta notes")
    gamma = await create(client, owner.headers, title="alpha again")

    listed = await client.get("/v1/conversations", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["object"] == "list"
    assert [c["id"] for c in body["data"]] == [gamma["id"], beta["id"], alpha["id"]]

    found = await client.get("/v1/conversations", params={"q": "ALPHA"}, headers=owner.headers)
    assert [c["id"] for c in found.json()["data"]] == [gamma["id"], alpha["id"]]

    page = await client.get("/v1/conversations", params={"limit": 2}, headers=owner.headers)
    assert page.json()["has_more"] is True
    rest = await client.get(
        "/v1/conversations",
        params={"limit": 2, "after": page.json()["last_id"]},
        headers=owner.headers,
    )
    assert [c["id"] for c in rest.json()["data"]] == [alpha["id"]]
    assert rest.json()["has_more"] is False

    got = await client.get(f"/v1/conversations/{alpha['id']}", headers=owner.headers)
    assert got.status_code == 200
    assert got.json()["metadata"] == {"k": "v"}

    patched = await client.patch(
        f"/v1/conversations/{alpha['id']}",
        json={"title": "Renamed", "system_prompt": "Speak French.", "metadata": {"x": 1}},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    out = patched.json()
    assert out["title"] == "Renamed"
    assert out["system_prompt"] == "Speak French."
    assert out["metadata"] == {"x": 1}
    assert out["model"] == MODEL

    bad_model = await client.patch(
        f"/v1/conversations/{alpha['id']}", json={"model": "no-such-model"}, headers=owner.headers
    )
    assert_error(bad_model, 404, "not_found_error", "model_not_found")

    deleted = await client.delete(f"/v1/conversations/{alpha['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    gone = await client.get(f"/v1/conversations/{alpha['id']}", headers=owner.headers)
    assert_error(gone, 404, "not_found_error")
    remaining = await client.get("/v1/conversations", headers=owner.headers)
    assert alpha["id"] not in [c["id"] for c in remaining.json()["data"]]


async def test_another_org_gets_404_on_every_route(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    stranger = await register(client)
    conv = await create(client, owner.headers, title="Private")
    await say(client, owner.headers, conv["id"], "secret")
    base = f"/v1/conversations/{conv['id']}"
    for response in (
        await client.get(base, headers=stranger.headers),
        await client.patch(base, json={"title": "x"}, headers=stranger.headers),
        await client.delete(base, headers=stranger.headers),
        await client.get(f"{base}/messages", headers=stranger.headers),
        await client.post(f"{base}/messages", json={"content": "hi"}, headers=stranger.headers),
    ):
        assert_error(response, 404, "not_found_error")
    listed = await client.get("/v1/conversations", headers=stranger.headers)
    assert listed.json()["data"] == []
    # Naming the owner's org outright is refused too.
    refused = await client.get(base, headers=stranger.in_org(owner.org_id))
    assert_error(refused, 404, "not_found_error")
    still = await client.get(f"{base}/messages", headers=owner.headers)
    assert len(still.json()["data"]) == 2


async def test_members_see_their_own_admins_see_all(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    alice = await join(client, owner, owner.org_id, "member")
    bob = await join(client, owner, owner.org_id, "member")
    admin = await join(client, owner, owner.org_id, "admin")
    viewer = await join(client, owner, owner.org_id, "viewer")
    conv = await create(client, alice.in_org(owner.org_id), title="Alice's")
    base = f"/v1/conversations/{conv['id']}"

    assert_error(await client.get(base, headers=bob.in_org(owner.org_id)), 404, "not_found_error")
    bobs = await client.get("/v1/conversations", headers=bob.in_org(owner.org_id))
    assert bobs.json()["data"] == []
    posted = await client.post(
        f"{base}/messages", json={"content": "hi"}, headers=bob.in_org(owner.org_id)
    )
    assert_error(posted, 404, "not_found_error")

    # Admins and owners see all; so do API keys, which act for the organisation.
    key = bearer((await create_key(client, owner, scopes=["conversations"]))["key"])
    for headers in (admin.in_org(owner.org_id), owner.in_org(owner.org_id), key):
        seen = await client.get(base, headers=headers)
        assert seen.status_code == 200, seen.text
        listed = await client.get("/v1/conversations", headers=headers)
        assert [c["id"] for c in listed.json()["data"]] == [conv["id"]]

    denied = await client.get("/v1/conversations", headers=viewer.in_org(owner.org_id))
    assert_error(denied, 403, "permission_error")


async def test_api_keys_need_the_conversations_scope(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    key = await create_key(client, owner, scopes=["conversations"])
    headers = bearer(key["key"])
    conv = await create(client, headers, title="By key")
    assert conv["created_by"] == key["id"]
    exchange = await say(client, headers, conv["id"], "from a key")
    assert exchange["assistant_message"]["content"] == "Mock reply: from a key"
    listed = await client.get("/v1/conversations", headers=headers)
    assert [c["id"] for c in listed.json()["data"]] == [conv["id"]]

    inference_only = bearer((await create_key(client, owner, scopes=["inference"]))["key"])
    for response in (
        await client.get("/v1/conversations", headers=inference_only),
        await client.post("/v1/conversations", json={"title": "x"}, headers=inference_only),
        await client.get(f"/v1/conversations/{conv['id']}", headers=inference_only),
        await client.post(
            f"/v1/conversations/{conv['id']}/messages",
            json={"content": "hi"},
            headers=inference_only,
        ),
    ):
        assert_error(response, 403, "permission_error")


async def test_bad_input(client: httpx.AsyncClient) -> None:
    owner: Account = await register(client)
    conv = await create(client, owner.headers)
    url = f"/v1/conversations/{conv['id']}/messages"

    empty = await client.post(url, json={"content": ""}, headers=owner.headers)
    assert empty.status_code in (400, 422), empty.text
    assert_error(empty, empty.status_code, "invalid_request_error")
    blank = await client.post(url, json={"content": "   "}, headers=owner.headers)
    assert_error(blank, 400, "invalid_request_error")

    unknown = await client.post(
        url, json={"content": "hi", "model": "no-such-model"}, headers=owner.headers
    )
    assert_error(unknown, 404, "not_found_error", "model_not_found")
    unknown_create = await client.post(
        "/v1/conversations", json={"model": "no-such-model"}, headers=owner.headers
    )
    assert_error(unknown_create, 404, "not_found_error", "model_not_found")

    huge = await client.post(url, json={"content": "x" * 100_001}, headers=owner.headers)
    assert_error(huge, 400, "invalid_request_error", "content_too_long")

    no_model = await create(client, owner.headers, model=None)
    missing = await client.post(
        f"/v1/conversations/{no_model['id']}/messages",
        json={"content": "hi"},
        headers=owner.headers,
    )
    assert_error(missing, 400, "invalid_request_error", "model_required")

    # Nothing was stored by the refused requests.
    listed = await client.get(url, headers=owner.headers)
    assert listed.json()["data"] == []

    unknown_conv = await client.get("/v1/conversations/conv_nope", headers=owner.headers)
    assert_error(unknown_conv, 404, "not_found_error", "conversation_not_found")


async def test_export_as_json_and_markdown(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    conversation = await create(
        client, owner.headers, title="Trip plans", system_prompt="Be brief."
    )
    await say(client, owner.headers, conversation["id"], "Where to in May?")
    as_json = await client.get(
        f"/v1/conversations/{conversation['id']}/export", headers=owner.headers
    )
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    assert body["conversation"]["title"] == "Trip plans"
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "Where to in May?"),
        ("assistant", "Mock reply: Where to in May?"),
    ]
    as_md = await client.get(
        f"/v1/conversations/{conversation['id']}/export?format=markdown", headers=owner.headers
    )
    assert as_md.status_code == 200
    assert as_md.headers["content-type"].startswith("text/markdown")
    text = as_md.text
    assert text.startswith("# Trip plans")
    assert "## System\n\nBe brief." in text
    assert text.index("## User\n\nWhere to in May?") < text.index("Mock reply: Where to in May?")
    other = await register(client)
    hidden = await client.get(
        f"/v1/conversations/{conversation['id']}/export", headers=other.headers
    )
    assert_error(hidden, 404, "not_found_error")
