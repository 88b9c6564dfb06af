"""Long conversations in a small window: no upstream call ever exceeds it, early facts survive
in the rolling summary, and the summary is extended now and then rather than every turn."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from parley.conversations.context import SUMMARIZER_INSTRUCTIONS, SUMMARY_HEADING
from parley.kit.tokens import count_messages
from tests.conversations.conftest import TINY_RESERVE, TINY_WINDOW
from tests.conversations.test_conversations import create, say
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import register
from tests.usage.conftest import usage_events

TURNS = 200
FACTS = {
    0: "FACT: the launch code is 4242.",
    1: "FACT: my cat is called Miso.",
    57: "FACT: the meeting moved to Thursday.",
}


def user_text(turn: int) -> str:
    filler = " ".join(f"note{turn}-{k}" for k in range(12))
    return f"{FACTS[turn]} {filler}" if turn in FACTS else f"Turn {turn}: {filler}"


def window_used(request: dict[str, Any]) -> int:
    """What a request asks of the window: its prompt (counted as Parley counts for this
    model) plus the room it reserves for the reply."""
    return count_messages(request["messages"], "tiny") + int(request["max_tokens"])


def is_summary_call(request: dict[str, Any]) -> bool:
    return bool(request["messages"][0]["content"] == SUMMARIZER_INSTRUCTIONS)


async def test_hundreds_of_turns_fit_and_early_facts_survive(
    client: httpx.AsyncClient, upstream: FakeOpenAI, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="tiny", system_prompt="You are terse.")
    for turn in range(TURNS):
        exchange = await say(client, owner.headers, conv["id"], user_text(turn))
        assert exchange["assistant_message"]["status"] == "complete"

    replies = [r for r in upstream.requests if not is_summary_call(r)]
    summaries = [r for r in upstream.requests if is_summary_call(r)]
    assert len(replies) == TURNS
    # Never over the window, summaries included.
    assert max(window_used(r) for r in upstream.requests) <= TINY_WINDOW
    assert all(r["max_tokens"] == TINY_RESERVE for r in replies)

    # The history outgrew the window early on, and was summarized, not resent.
    last = replies[-1]["messages"]
    assert last[0] == {"role": "system", "content": "You are terse."}
    assert last[1]["role"] == "system"
    assert last[1]["content"].startswith(SUMMARY_HEADING)
    for fact in FACTS.values():
        assert fact in last[1]["content"], (fact, last[1]["content"])
    assert last[-1] == {"role": "user", "content": user_text(TURNS - 1)}
    # The newest turns go verbatim, in order, right before the new message.
    assert last[-3]["content"] == user_text(TURNS - 2)
    assert last[-2]["role"] == "assistant"
    assert not any("note0-" in m["content"] for m in last[2:])

    # Extended incrementally: a summary call every several turns, each folding new messages
    # into the previous summary rather than starting over.
    assert 5 <= len(summaries) <= TURNS // 4, len(summaries)
    for earlier, later in itertools.pairwise(summaries):
        assert "FACT: the launch code is 4242." in later["messages"][1]["content"]
        assert later["messages"][1]["content"] != earlier["messages"][1]["content"]
    # Summaries are metered, but are not messages of the quota.
    events = await usage_events(app, owner.org_id)
    assert sum(e.endpoint == "conversation.summary" for e in events) == len(summaries)
    assert sum(e.messages for e in events) == TURNS


async def test_truncate_drops_the_oldest_turns_without_summaries(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="tiny", context_strategy="truncate")
    for turn in range(60):
        await say(client, owner.headers, conv["id"], user_text(turn))
    assert not any(is_summary_call(r) for r in upstream.requests)
    assert max(window_used(r) for r in upstream.requests) <= TINY_WINDOW
    last = upstream.requests[-1]["messages"]
    assert last[-1]["content"] == user_text(59)
    assert all("FACT: the launch code" not in m["content"] for m in last)
    # It still sends as much recent history as fits.
    assert len(last) > 4
    assert window_used(upstream.requests[-1]) > TINY_WINDOW * 0.6


async def test_a_failing_summarizer_falls_back_to_truncation(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.fail_if = is_summary_call
    owner = await register(client)
    conv = await create(client, owner.headers, model="tiny")
    for turn in range(40):
        exchange = await say(client, owner.headers, conv["id"], user_text(turn))
        assert exchange["assistant_message"]["status"] == "complete"
    assert any(is_summary_call(r) for r in upstream.requests)  # tried, and failed
    replies = [r for r in upstream.requests if not is_summary_call(r)]
    assert len(replies) == 40
    assert max(window_used(r) for r in replies) <= TINY_WINDOW
    assert not any(m["content"].startswith(SUMMARY_HEADING) for m in replies[-1]["messages"])


async def test_context_strategy_is_validated_and_can_change(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    bad = await client.post(
        "/v1/conversations",
        json={"model": "tiny", "context_strategy": "forget"},
        headers=owner.headers,
    )
    assert bad.status_code == 422
    conv = await create(client, owner.headers, model="tiny")
    assert conv["context_strategy"] == "summarize"
    patched = await client.patch(
        f"/v1/conversations/{conv['id']}",
        json={"context_strategy": "truncate"},
        headers=owner.headers,
    )
    assert patched.json()["context_strategy"] == "truncate"


@pytest.mark.parametrize("turns", [3])
async def test_short_conversations_are_sent_whole(
    client: httpx.AsyncClient, upstream: FakeOpenAI, turns: int
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="tiny")
    for turn in range(turns):
        await say(client, owner.headers, conv["id"], f"Hello {turn}")
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant"] * (turns - 1) + ["user"]
