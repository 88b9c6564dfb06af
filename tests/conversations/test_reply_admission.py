"""A reply is admitted before anything is called for it: a refused reply costs no summary,
the summary calls it makes are admitted too (rates, plan tier, spending cap) and metered,
and a conversation may only use the models its plan includes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.conversations.test_context_window import is_summary_call, user_text
from tests.conversations.test_conversations import create, say
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import Account, FakeClock, assert_error, register
from tests.usage.conftest import set_plan, settle, usage_events

FILL_TURNS = 25  # enough history for the tiny window to need a summary


async def long_conversation(client: httpx.AsyncClient, owner: Account) -> str:
    """A conversation whose history outgrew its window, kept whole by truncation so far;
    the next reply with `summarize` calls the summary model."""
    conv = await create(client, owner.headers, model="tiny", context_strategy="truncate")
    for turn in range(FILL_TURNS):
        await say(client, owner.headers, conv["id"], user_text(turn))
    patched = await client.patch(
        f"/v1/conversations/{conv['id']}",
        json={"context_strategy": "summarize"},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    return str(conv["id"])


async def send(client: httpx.AsyncClient, owner: Account, conv_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/conversations/{conv_id}/messages",
        json={"content": user_text(FILL_TURNS)},
        headers=owner.headers,
    )


async def test_a_refused_reply_runs_no_summary(
    client: httpx.AsyncClient, app: FastAPI, upstream: FakeOpenAI
) -> None:
    owner = await register(client)
    conv_id = await long_conversation(client, owner)
    await set_plan(app, owner.org_id, "custom", messages=FILL_TURNS)
    caps = await client.patch(
        "/v1/billing/subscription", json={"message_cap": FILL_TURNS}, headers=owner.headers
    )
    assert caps.status_code == 200, caps.text
    calls = len(upstream.requests)
    for _ in range(3):
        refused = await send(client, owner, conv_id)
        assert_error(refused, 429, "quota_exceeded", "message_cap_reached")
    assert len(upstream.requests) == calls, "no summary was written for a refused reply"


async def test_summary_calls_take_their_share_of_the_rate_limit(
    client: httpx.AsyncClient, app: FastAPI, upstream: FakeOpenAI, clock: FakeClock
) -> None:
    owner = await register(client)
    conv_id = await long_conversation(client, owner)
    await set_plan(app, owner.org_id, "custom", rpm=1)
    clock.advance(seconds=61)  # a fresh minute: room for exactly one call
    calls = len(upstream.requests)
    reply = await send(client, owner, conv_id)
    # The reply took the one call of the minute; the summary would have been a second, so
    # this turn falls back to dropping the oldest messages.
    assert reply.status_code == 201, reply.text
    assert reply.json()["assistant_message"]["status"] == "complete"
    sent = upstream.requests[calls:]
    assert [is_summary_call(r) for r in sent] == [False]

    clock.advance(seconds=61)
    await set_plan(app, owner.org_id, "custom", rpm=10)
    reply = await send(client, owner, conv_id)
    assert reply.status_code == 201, reply.text
    sent = [is_summary_call(r) for r in upstream.requests[calls + 1 :]]
    assert sent[-1] is False
    assert len(sent) >= 2
    assert all(sent[:-1]), "with room, it summarizes first"
    await settle(app)
    events = await usage_events(app, owner.org_id)
    summaries = [e for e in events if e.endpoint == "conversation.summary"]
    assert len(summaries) == len(sent) - 1, "every summary call is metered"
    assert all((e.status, e.messages) == ("ok", 0) and e.prompt_tokens > 0 for e in summaries)


@pytest.mark.parametrize("where", ["create", "patch", "reply"])
async def test_a_conversation_may_only_use_the_models_of_its_plan(
    client: httpx.AsyncClient, app: FastAPI, where: str
) -> None:
    owner = await register(client)  # on the free plan: basic models only

    async def attempt() -> httpx.Response:
        if where == "create":
            return await client.post(
                "/v1/conversations", json={"model": "premium-chat"}, headers=owner.headers
            )
        conv = await create(client, owner.headers)
        if where == "patch":
            return await client.patch(
                f"/v1/conversations/{conv['id']}",
                json={"model": "premium-chat"},
                headers=owner.headers,
            )
        return await client.post(
            f"/v1/conversations/{conv['id']}/messages",
            json={"content": "Hello", "model": "premium-chat"},
            headers=owner.headers,
        )

    refused = await attempt()
    error = assert_error(refused, 403, "permission_error", "model_not_allowed")
    assert error["param"] == "model"
    # The same answer the gateway gives for that model.
    gateway = await client.post(
        "/v1/chat/completions",
        json={"model": "premium-chat", "messages": [{"role": "user", "content": "Hi"}]},
        headers=owner.headers,
    )
    assert gateway.json() == refused.json()

    await set_plan(app, owner.org_id, "professional")
    allowed = await attempt()
    assert allowed.status_code in (200, 201), allowed.text
