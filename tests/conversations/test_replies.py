"""Replies: streamed as server-sent events, branched by regenerate and edit, cancelled midway,
metered one message each, and refused cleanly on bad input."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import update

from parley.conversations.models import Message
from tests.conversations.test_conversations import MODEL, create, say
from tests.support import Account, assert_error, register, serving
from tests.usage.conftest import set_plan, summary, usage_events


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body, checking that each `event:` names its payload's type."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        event = orjson.loads(fields["data"])
        assert fields["event"] == event["type"], block
        events.append(event)
    return events


async def messages_of(
    client: httpx.AsyncClient, account: Account, conv_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/conversations/{conv_id}/messages", headers=account.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


# A long message for the slow mock: its reply takes about 3 s, word by word.
LONG = " ".join(f"w{i}" for i in range(60))
LONG_REPLY = f"Mock reply: {LONG}"


@contextlib.asynccontextmanager
async def slow_reply(
    app: FastAPI, account: Account, conv_id: str
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """LONG sent with stream=true over a real socket; yields the reply's events as they
    arrive. Leaving the block closes the connection."""
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as live,
        live.stream(
            "POST",
            f"/v1/conversations/{conv_id}/messages",
            json={"content": LONG, "stream": True},
            headers=account.headers,
        ) as response,
    ):
        assert response.status_code == 200

        async def events() -> AsyncIterator[dict[str, Any]]:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    yield orjson.loads(line[6:])

        yield events()


async def test_a_streamed_reply_arrives_as_events_and_is_stored(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    response = await client.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"content": "Tell me about tides", "stream": True},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)

    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message.created", "message.created"]
    assert kinds[-1] == "message.completed"
    assert set(kinds[2:-1]) == {"message.delta"}
    user, placeholder = events[0]["message"], events[1]["message"]
    assert (user["role"], user["content"], user["status"]) == (
        "user",
        "Tell me about tides",
        "complete",
    )
    assert (placeholder["role"], placeholder["status"], placeholder["content"]) == (
        "assistant",
        "streaming",
        "",
    )
    assert placeholder["parent_id"] == user["id"]

    deltas = [e for e in events if e["type"] == "message.delta"]
    assert all(d["message_id"] == placeholder["id"] for d in deltas)
    text = ""
    for d in deltas:  # each delta says where it goes
        assert d["index"] == len(text)
        text += d["delta"]
    final = events[-1]["message"]
    assert final["id"] == placeholder["id"]
    assert final["content"] == text == "Mock reply: Tell me about tides"
    assert final["status"] == "complete"
    assert final["prompt_tokens"] > 0
    assert final["completion_tokens"] > 0

    stored = await messages_of(client, owner, conv["id"])
    assert [(m["id"], m["content"], m["status"]) for m in stored] == [
        (user["id"], "Tell me about tides", "complete"),
        (final["id"], text, "complete"),
    ]
    # The title comes from the first message when none was given.
    got = await client.get(f"/v1/conversations/{conv['id']}", headers=owner.headers)
    assert got.json()["title"] == "Tell me about tides"

    events_ledger = await usage_events(app, owner.org_id)
    assert [(e.endpoint, e.status, e.messages, e.stream) for e in events_ledger] == [
        ("conversation", "ok", 1, True)
    ]


async def test_regenerate_and_edit_make_branches_that_stay_readable(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    first = await say(client, owner.headers, conv["id"], "One")
    second = await say(client, owner.headers, conv["id"], "Two")
    old_reply = second["assistant_message"]

    regen = await client.post(
        f"/v1/conversations/{conv['id']}/messages/{old_reply['id']}/regenerate",
        json={},
        headers=owner.headers,
    )
    assert regen.status_code == 201, regen.text
    new_reply = regen.json()["assistant_message"]
    assert regen.json()["user_message"]["id"] == second["user_message"]["id"]
    assert new_reply["parent_id"] == second["user_message"]["id"]
    assert new_reply["id"] != old_reply["id"]
    assert new_reply["sibling_ids"] == [old_reply["id"], new_reply["id"]]

    branch = await messages_of(client, owner, conv["id"])
    assert [m["id"] for m in branch] == [
        first["user_message"]["id"],
        first["assistant_message"]["id"],
        second["user_message"]["id"],
        new_reply["id"],
    ]

    edit = await client.post(
        f"/v1/conversations/{conv['id']}/messages/{first['user_message']['id']}/edit",
        json={"content": "One, rephrased"},
        headers=owner.headers,
    )
    assert edit.status_code == 201, edit.text
    edited = edit.json()
    assert edited["user_message"]["parent_id"] is None
    assert edited["user_message"]["sibling_ids"] == [
        first["user_message"]["id"],
        edited["user_message"]["id"],
    ]
    assert edited["assistant_message"]["content"] == "Mock reply: One, rephrased"
    branch = await messages_of(client, owner, conv["id"])
    assert [m["content"] for m in branch] == ["One, rephrased", "Mock reply: One, rephrased"]

    # The earlier branch is still there: switching to it lands on its newest leaf.
    switched = await client.patch(
        f"/v1/conversations/{conv['id']}",
        json={"current_leaf_id": first["user_message"]["id"]},
        headers=owner.headers,
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["current_leaf_id"] == new_reply["id"]
    branch = await messages_of(client, owner, conv["id"])
    assert [m["content"] for m in branch] == ["One", "Mock reply: One", "Two", "Mock reply: Two"]
    assert branch[0]["sibling_ids"] == [first["user_message"]["id"], edited["user_message"]["id"]]

    # The next message continues the branch now current.
    third = await say(client, owner.headers, conv["id"], "Three")
    assert third["user_message"]["parent_id"] == new_reply["id"]
    export = await client.get(
        f"/v1/conversations/{conv['id']}/export?format=markdown", headers=owner.headers
    )
    assert "Three" in export.text
    assert "rephrased" not in export.text


async def test_the_model_sees_the_branch_it_answers(
    client: httpx.AsyncClient, upstream: Any
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="tiny", system_prompt="Be brief.")
    first = await say(client, owner.headers, conv["id"], "Alpha")
    await say(client, owner.headers, conv["id"], "Beta")
    await client.post(
        f"/v1/conversations/{conv['id']}/messages/{first['user_message']['id']}/edit",
        json={"content": "Gamma"},
        headers=owner.headers,
    )
    sent = upstream.requests[-1]["messages"]
    assert [m["content"] for m in sent] == ["Be brief.", "Gamma"]
    regen_of = (await messages_of(client, owner, conv["id"]))[-1]["id"]
    await client.post(
        f"/v1/conversations/{conv['id']}/messages/{regen_of}/regenerate",
        json={},
        headers=owner.headers,
    )
    assert [m["content"] for m in upstream.requests[-1]["messages"]] == ["Be brief.", "Gamma"]
    assert upstream.requests[-1]["max_tokens"] == 256


async def test_wrong_targets_for_regenerate_and_edit(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    exchange = await say(client, owner.headers, conv["id"], "Hi")
    base = f"/v1/conversations/{conv['id']}/messages"
    user_id, reply_id = exchange["user_message"]["id"], exchange["assistant_message"]["id"]

    wrong = await client.post(f"{base}/{user_id}/regenerate", json={}, headers=owner.headers)
    assert_error(wrong, 400, "invalid_request_error", "invalid_message_role")
    wrong = await client.post(
        f"{base}/{reply_id}/edit", json={"content": "x"}, headers=owner.headers
    )
    assert_error(wrong, 400, "invalid_request_error", "invalid_message_role")
    unknown = "msg_00000000000000000000000000"
    missing = await client.post(f"{base}/{unknown}/regenerate", json={}, headers=owner.headers)
    assert_error(missing, 404, "not_found_error", "message_not_found")
    empty = await client.post(
        f"{base}/{user_id}/edit", json={"content": " "}, headers=owner.headers
    )
    assert_error(empty, 400, "invalid_request_error")
    switch = await client.patch(
        f"/v1/conversations/{conv['id']}", json={"current_leaf_id": unknown}, headers=owner.headers
    )
    assert_error(switch, 404, "not_found_error", "message_not_found")
    # A message of another conversation is not a branch of this one.
    other = await create(client, owner.headers)
    elsewhere = await client.post(
        f"/v1/conversations/{other['id']}/messages/{reply_id}/regenerate",
        json={},
        headers=owner.headers,
    )
    assert_error(elsewhere, 404, "not_found_error", "message_not_found")
    assert len(await messages_of(client, owner, conv["id"])) == 2


async def test_cancel_keeps_the_partial_reply_and_meters_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="slow-mock")
    seen: list[dict[str, Any]] = []
    cancelled: httpx.Response | None = None
    async with slow_reply(app, owner, conv["id"]) as events:
        async for event in events:
            seen.append(event)
            deltas = [e for e in seen if e["type"] == "message.delta"]
            if len(deltas) == 3 and cancelled is None:
                cancelled = await client.post(
                    f"/v1/conversations/{conv['id']}/cancel", headers=owner.headers
                )
    assert cancelled is not None
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json() == {"object": "conversation.cancel", "cancelled": True}

    final = seen[-1]
    assert final["type"] == "message.completed"
    reply = final["message"]
    assert reply["status"] == "cancelled"
    assert reply["content"]
    assert LONG_REPLY.startswith(reply["content"])
    assert reply["content"] != LONG_REPLY
    assert reply["completion_tokens"] > 0

    stored = (await messages_of(client, owner, conv["id"]))[-1]
    assert (stored["id"], stored["status"], stored["content"]) == (
        reply["id"],
        "cancelled",
        reply["content"],
    )
    [event] = await usage_events(app, owner.org_id)
    assert event.status == "cancelled"
    assert event.completion_tokens > 0
    # Stopped after its text began to arrive: a message served, with what was generated.
    assert event.messages == 1
    assert (await summary(client, owner))["messages"]["used"] == 1

    # Nothing is running now.
    again = await client.post(f"/v1/conversations/{conv['id']}/cancel", headers=owner.headers)
    assert again.json()["cancelled"] is False


async def test_closing_the_stream_stops_the_reply(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="slow-mock")
    async with slow_reply(app, owner, conv["id"]) as events:
        deltas = 0
        async for event in events:
            if event["type"] == "message.delta":
                deltas += 1
                if deltas == 2:
                    break  # leaving the block closes the connection

    for _ in range(200):
        last = (await messages_of(client, owner, conv["id"]))[-1]
        if last["status"] != "streaming":
            break
        await asyncio.sleep(0.02)
    assert last["status"] == "cancelled"
    assert LONG_REPLY.startswith(last["content"])
    assert len(last["content"]) < len(LONG_REPLY)
    [event] = await usage_events(app, owner.org_id)
    assert (event.status, event.messages) == ("cancelled", 1), "its words reached the client"


async def test_a_broken_upstream_stream_keeps_what_arrived(
    client: httpx.AsyncClient, upstream: Any
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="tiny")
    upstream.die_mid_stream_next(after_chunks=2)
    response = await client.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"content": "Hello", "stream": True},
        headers=owner.headers,
    )
    events = parse_sse(response.text)
    assert [e["type"] for e in events[-2:]] == ["message.completed", "error"]
    assert events[-1]["error"]["code"] == "upstream_interrupted"
    reply = events[-2]["message"]
    assert reply["status"] == "incomplete"
    # What arrived before the break (the deltas the client saw) is what is kept.
    arrived = "".join(e["delta"] for e in events if e["type"] == "message.delta")
    assert reply["content"] == arrived
    assert "Noted (1 messages seen).".startswith(arrived)
    assert arrived != "Noted (1 messages seen)."
    stored = (await messages_of(client, owner, conv["id"]))[-1]
    assert (stored["status"], stored["content"]) == ("incomplete", reply["content"])

    # A failure before the first byte stores nothing at all.
    upstream.fail_next(500, times=5)
    failed = await client.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"content": "Again"},
        headers=owner.headers,
    )
    assert failed.status_code in (502, 503), failed.text
    assert len(await messages_of(client, owner, conv["id"])) == 2


async def test_each_reply_is_one_message_of_the_quota(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    await set_plan(app, owner.org_id, "custom", messages=3)
    capped = await client.patch(
        "/v1/billing/subscription", json={"message_cap": 3}, headers=owner.headers
    )
    assert capped.status_code == 200, capped.text
    conv = await create(client, owner.headers)
    first = await say(client, owner.headers, conv["id"], "one")
    await client.post(
        f"/v1/conversations/{conv['id']}/messages/{first['assistant_message']['id']}/regenerate",
        json={"stream": True},
        headers=owner.headers,
    )
    await say(client, owner.headers, conv["id"], "three")
    assert (await summary(client, owner))["messages"]["used"] == 3

    refused = await client.post(
        f"/v1/conversations/{conv['id']}/messages", json={"content": "four"}, headers=owner.headers
    )
    assert_error(refused, 429, "quota_exceeded")
    assert "retry-after" in refused.headers
    branch = await messages_of(client, owner, conv["id"])
    assert [m["content"] for m in branch][-2:] == ["three", "Mock reply: three"]


async def test_bad_input_is_refused_and_nothing_is_stored(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    url = f"/v1/conversations/{conv['id']}/messages"
    cases = [
        ({"content": ""}, 422, "invalid_request_error"),
        ({"content": "   "}, 400, "invalid_request_error"),
        ({"content": "x" * 100_001}, 400, "invalid_request_error"),
        ({"content": 42}, 422, "invalid_request_error"),
        ({"content": "hi", "stream": "yes please"}, 422, "invalid_request_error"),
        ({"content": "hi", "model": "no-such-model"}, 404, "not_found_error"),
        ({"content": "hi", "surprise": True}, 422, "invalid_request_error"),
    ]
    for body, status, kind in cases:
        assert_error(await client.post(url, json=body, headers=owner.headers), status, kind)
    malformed = await client.post(
        url, content=b'{"content": ', headers={**owner.headers, "content-type": "application/json"}
    )
    assert_error(malformed, 400, "invalid_request_error", "invalid_json")
    # A message bigger than the model's whole window says so.
    tiny = await create(client, owner.headers, model="tiny")
    too_big = await client.post(
        f"/v1/conversations/{tiny['id']}/messages",
        json={"content": "word " * 3000},
        headers=owner.headers,
    )
    error = assert_error(too_big, 400, "invalid_request_error", "context_length_exceeded")
    assert "1024" in error["message"]
    assert await messages_of(client, owner, conv["id"]) == []
    assert await messages_of(client, owner, tiny["id"]) == []
    assert MODEL == "parley-mock"


async def test_a_streaming_reply_saves_what_it_has_as_it_goes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    app.state.ctx.replies.save_every_s = 0.1
    owner = await register(client)
    conv = await create(client, owner.headers, model="slow-mock")
    async with slow_reply(app, owner, conv["id"]) as events:
        deltas = 0
        async for event in events:
            if event["type"] == "message.delta":
                deltas += 1
                if deltas == 8:
                    break
        # A reload in the middle of the reply shows what has arrived so far.
        midway = (await messages_of(client, owner, conv["id"]))[-1]
    assert midway["status"] == "streaming"
    assert midway["content"]
    assert LONG_REPLY.startswith(midway["content"])


async def test_replies_left_streaming_by_a_dead_process_are_closed(
    client: httpx.AsyncClient, app: FastAPI, clock: Any
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    dead = (await say(client, owner.headers, conv["id"], "first"))["assistant_message"]
    alive = (await say(client, owner.headers, conv["id"], "second"))["assistant_message"]
    ctx = app.state.ctx
    async with ctx.db.session() as session:
        for message_id, saved in (
            (dead["id"], clock() - timedelta(minutes=10)),
            (alive["id"], clock()),
        ):
            await session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(status="streaming", updated_at=saved)
            )
    assert (
        await client.post(f"/v1/conversations/{conv['id']}/cancel", headers=owner.headers)
    ).json()["cancelled"]

    assert await ctx.replies.sweep() == 1
    stored = {m["id"]: m for m in await messages_of(client, owner, conv["id"])}
    assert (stored[dead["id"]]["status"], stored[dead["id"]]["content"]) == (
        "incomplete",
        "Mock reply: first",
    )
    assert stored[alive["id"]]["status"] == "streaming"  # still saving: left alone
