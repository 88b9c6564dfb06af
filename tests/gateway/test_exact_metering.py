"""Exact metering at the gateway: a message is counted once its content reached the client,
however the call ends (and not before); a request with `n` choices is `n` messages; tokens
per minute reserve every choice's longest reply; tools count toward the prompt.

Both wire shapes go through the same pipeline, so the stream rules are checked on each,
with the official SDKs over a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from fastapi import FastAPI

from parley.kit.tokens import count_text
from parley.usage.models import UsageEvent
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.gateway.test_usage_metering import usage_rows
from tests.support import Account, assert_error
from tests.usage.conftest import set_plan, settle, summary

MODEL = "gpt-4o-mini"  # on the fake upstream; writes at most 1,024 tokens per reply
MAX_OUTPUT = 1024
ROOMY_TPM = 1_000_000_000


async def event_for(app: FastAPI, request_id: str) -> UsageEvent:
    """The request's usage event, once the server has noticed how the request ended."""
    for _ in range(300):
        found = [r for r in await usage_rows(app) if r.id == request_id]
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no usage event for {request_id}")


# A stream opened with an SDK: yields its text pieces; the request id is kept in `ids`.
Streamer = Callable[[str, list[str]], AsyncIterator[str]]


@pytest.fixture(params=["openai", "anthropic"])
def open_stream(request: pytest.FixtureRequest, live_url: str, api_key: str) -> Streamer:
    if request.param == "openai":
        sdk = openai.AsyncOpenAI(api_key=api_key, base_url=f"{live_url}/v1", max_retries=0)

        async def openai_text(content: str, ids: list[str]) -> AsyncIterator[str]:
            stream = await sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": content}], stream=True
            )
            ids.append(stream.response.headers["x-request-id"])
            try:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield choice.delta.content
            finally:
                await stream.close()

        return openai_text

    claude = anthropic.AsyncAnthropic(api_key=api_key, base_url=live_url, max_retries=0)

    async def anthropic_text(content: str, ids: list[str]) -> AsyncIterator[str]:
        stream = await claude.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": content}],
            stream=True,
        )
        ids.append(stream.response.headers["x-request-id"])
        try:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield event.delta.text
        finally:
            await stream.close()

    return anthropic_text


async def test_a_stream_read_to_its_last_word_then_left_is_one_message(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    fake_openai: FakeOpenAI,
    open_stream: Streamer,
) -> None:
    # The upstream holds back its ending (finish reason, usage, [DONE]) after the text.
    fake_openai.pause_before_finish_s = 30
    ids: list[str] = []
    text = ""
    async for piece in open_stream("Hello", ids):
        text += piece
        if text == fake_openai.reply:
            break  # every word read; the client leaves before the stream's end
    event = await event_for(app, ids[0])
    assert event.status != "ok"
    assert event.messages == 1, "its content reached the client: a message served"
    assert event.completion_tokens == count_text(fake_openai.reply, MODEL)
    assert event.cost_micros > 0
    await settle(app)
    assert (await summary(client, account))["messages"]["used"] == 1


async def test_a_stream_left_before_its_first_word_costs_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    fake_openai: FakeOpenAI,
    open_stream: Streamer,
) -> None:
    fake_openai.hang_next(30)  # no first byte for a long while
    ids: list[str] = []

    async def read() -> None:
        async for _ in open_stream("Hello", ids):
            raise AssertionError("no content was expected")

    # The client gives up waiting for the response (no headers yet, so no request id).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read(), timeout=0.5)
    for _ in range(300):
        rows = await usage_rows(app)
        if rows:
            break
        await asyncio.sleep(0.02)
    [event] = rows
    assert (event.status, event.error_type) == ("cancelled", "client_disconnected")
    assert event.messages == 0
    await settle(app)
    assert (await summary(client, account))["messages"]["used"] == 0


# --- n choices -----------------------------------------------------------------------------


async def chat(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return await client.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )


async def test_a_request_with_n_choices_is_n_messages(
    app: FastAPI, client: httpx.AsyncClient, account: Account, api_key: str
) -> None:
    await set_plan(app, account.org_id, "custom", messages=5)
    caps = await client.patch(
        "/v1/billing/subscription", json={"message_cap": 5}, headers=account.headers
    )
    assert caps.status_code == 200, caps.text

    plain = await chat(client, api_key, n=2)
    assert plain.status_code == 200, plain.text
    assert [c["index"] for c in plain.json()["choices"]] == [0, 1]
    streamed = await chat(client, api_key, n=2, stream=True)
    assert streamed.status_code == 200, streamed.text
    assert streamed.text.endswith("data: [DONE]\n\n")
    await settle(app)
    assert (await summary(client, account))["messages"]["used"] == 4

    # One message is left: two choices cannot be served, one can.
    refused = await chat(client, api_key, n=2)
    error = assert_error(refused, 429, "quota_exceeded", "message_cap_reached")
    assert "asks for 2 messages, but only 1" in error["message"]
    assert (await chat(client, api_key)).status_code == 200
    await settle(app)
    rows = await usage_rows(app)
    assert sorted(r.messages for r in rows) == [1, 2, 2]
    assert (await summary(client, account))["messages"]["used"] == 5


async def remaining_tokens(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["x-ratelimit-remaining-tokens"])


async def test_tokens_per_minute_reserve_every_choices_longest_reply(
    app: FastAPI, client: httpx.AsyncClient, account: Account, api_key: str
) -> None:
    # Without max_tokens a choice may write the model's longest reply: n of them are held.
    first = await chat(client, api_key, n=3)
    held = ROOMY_TPM - await remaining_tokens(first)
    assert 3 * MAX_OUTPUT < held < 3 * MAX_OUTPUT + 50
    await settle(app)  # the estimate is corrected to what was used
    [used] = [r.total_tokens for r in await usage_rows(app)]

    second = await chat(client, api_key, n=2, max_tokens=40)
    held = ROOMY_TPM - await remaining_tokens(second) - used
    assert 2 * 40 < held < 2 * 40 + 50


async def test_tool_definitions_count_toward_the_prompt(
    app: FastAPI, client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.include_usage = False  # Parley counts the tokens itself
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather forecast for a city, day by day, for a week.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "The city."}},
                    "required": ["city"],
                },
            },
        }
    ]
    without = await chat(client, api_key)
    with_tools = await chat(client, api_key, tools=tools)
    assert without.status_code == with_tools.status_code == 200
    tools_tokens = count_text(orjson.dumps(tools).decode(), MODEL)
    prompt = {r.id: r.prompt_tokens for r in await usage_rows(app)}
    difference = (
        prompt[with_tools.headers["x-request-id"]] - prompt[without.headers["x-request-id"]]
    )
    assert difference == tools_tokens > 20
    assert with_tools.json()["usage"]["prompt_tokens"] == prompt[with_tools.headers["x-request-id"]]
