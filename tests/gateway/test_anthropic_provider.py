"""AnthropicProvider against a fake Anthropic API on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from parley.gateway.errors import UpstreamError
from parley.gateway.providers.anthropic import AnthropicProvider
from parley.gateway.providers.base import Deployment, ProviderSettings
from tests.gateway.fakes.anthropic_server import FakeAnthropic
from tests.gateway.formats.samples import ask

Json = dict[str, Any]
DEPLOYMENT = Deployment(provider="anthropic-test", model="claude-fake-1")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            },
        },
    }
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic()
    await server.start()
    yield server
    await server.stop()


def make_provider(fake: FakeAnthropic, api_key: str = "sk-ant-test") -> AnthropicProvider:
    return AnthropicProvider(
        ProviderSettings(
            name="anthropic-test", type="anthropic", base_url=fake.url + "/", api_key=api_key
        )
    )


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    provider = make_provider(fake)
    await provider.start()
    yield provider
    await provider.close()


async def collect(provider: AnthropicProvider, request: Json, timeout_s: float = 5) -> list[Json]:
    return [c async for c in provider.stream(request, DEPLOYMENT, timeout_s=timeout_s)]


async def test_chat(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    resp = await provider.chat(ask("hello there", max_tokens=50), DEPLOYMENT, timeout_s=5)
    openai.types.chat.ChatCompletion.model_validate(resp)
    assert resp["model"] == "claude-fake-1"
    assert resp["choices"][0]["message"]["content"] == "Echo: hello there"
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"]["prompt_tokens"] > 0
    assert resp["usage"]["total_tokens"] == (
        resp["usage"]["prompt_tokens"] + resp["usage"]["completion_tokens"]
    )
    (sent,) = fake.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {
        "model": "claude-fake-1",
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello there"}],
    }


async def test_chat_max_tokens_maps_to_length(provider: AnthropicProvider) -> None:
    resp = await provider.chat(ask("one two three four", max_tokens=2), DEPLOYMENT, timeout_s=5)
    assert resp["choices"][0]["message"]["content"] == "Echo: one"
    assert resp["choices"][0]["finish_reason"] == "length"


async def test_chat_tool_call_and_result(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    first = await provider.chat(ask("cats", tools=TOOLS), DEPLOYMENT, timeout_s=5)
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "search"
    assert json.loads(call["function"]["arguments"]) == {"query": "cats", "limit": 3}
    assert fake.requests[0].json["tools"] == [
        {
            "name": "search",
            "description": "Search the web",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]

    follow_up = ask("cats", tools=TOOLS)
    follow_up["messages"] += [
        message,
        {"role": "tool", "tool_call_id": call["id"], "content": "42"},
    ]
    second = await provider.chat(follow_up, DEPLOYMENT, timeout_s=5)
    assert second["choices"][0]["message"]["content"] == "Tool said: 42"
    sent = fake.requests[1].json["messages"]
    assert sent[-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "42"}],
    }
    assert sent[-2]["content"][0]["type"] == "tool_use"


async def test_chat_reasoning(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    resp = await provider.chat(ask("why?", reasoning_effort="medium"), DEPLOYMENT, timeout_s=5)
    assert fake.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert resp["choices"][0]["message"]["content"] == "Echo: why?"  # thinking left out
    assert resp["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


async def test_n_greater_than_one_is_a_value_error(provider: AnthropicProvider) -> None:
    with pytest.raises(ValueError, match="n>1"):
        await provider.chat(ask("hi", n=3), DEPLOYMENT, timeout_s=5)


async def test_stream_text(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    chunks = await collect(provider, ask("stream me please"))
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    assert fake.requests[0].json["stream"] is True
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Echo: stream me please"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_stream_tool_call_deltas(provider: AnthropicProvider) -> None:
    chunks = await collect(provider, ask("dogs", tools=TOOLS, reasoning_effort="low"))
    calls = [
        call
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    head, *fragments = calls
    assert head["index"] == 0
    assert head["id"].startswith("toolu_")
    assert head["function"] == {"name": "search", "arguments": ""}
    assert len(fragments) > 1
    assert all(f["index"] == 0 and "id" not in f for f in fragments)
    arguments = "".join(f["function"]["arguments"] for f in fragments)
    assert json.loads(arguments) == {"query": "dogs", "limit": 3}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable"),
    [(429, 7, True), (529, None, True), (500, None, True), (400, None, False), (401, None, False)],
)
async def test_errors_map_to_upstream_error(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    status: int,
    retry_after: int | None,
    retryable: bool,
) -> None:
    fake.fail_next(status, times=2, retry_after=retry_after)
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    error = caught.value
    assert error.status == status
    assert error.retryable is retryable
    assert error.retry_after_s == (float(retry_after) if retry_after else None)
    assert error.provider == "anthropic-test"
    assert error.message == f"injected failure {status}"
    with pytest.raises(UpstreamError) as caught_stream:
        await collect(provider, ask("hi"))
    assert caught_stream.value.status == status
    assert (await provider.chat(ask("ok"), DEPLOYMENT, timeout_s=5))["choices"]


async def test_wrong_api_key_is_not_retryable(fake: FakeAnthropic) -> None:
    provider = make_provider(fake, api_key="sk-wrong")
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    finally:
        await provider.close()
    assert caught.value.status == 401
    assert caught.value.message == "invalid x-api-key"
    assert not caught.value.retryable


async def test_hang_is_a_timeout(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.hang_next(10)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=0.3)
    assert time.monotonic() - started < 3
    assert caught.value.kind == "timeout"
    assert caught.value.retryable
    fake.hang_next(10)
    with pytest.raises(UpstreamError) as caught_stream:
        await collect(provider, ask("hi"), timeout_s=0.3)
    assert caught_stream.value.kind == "timeout"


async def test_stall_mid_stream_is_a_timeout(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.stall_mid_stream_next(10, after_events=3)
    received: list[Json] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("hello"), DEPLOYMENT, timeout_s=0.3):
            received.append(chunk)

    with pytest.raises(UpstreamError) as caught:
        await consume()
    assert caught.value.kind == "timeout"
    assert received  # the failure came during iteration, after the first chunks


async def test_connection_reset(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.reset_next()
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    assert caught.value.kind == "connect"
    assert caught.value.retryable
    fake.reset_next()
    with pytest.raises(UpstreamError):
        await collect(provider, ask("hi"))
    assert (await provider.chat(ask("again"), DEPLOYMENT, timeout_s=5))["choices"]


async def test_death_mid_stream(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.die_mid_stream_next(after_events=4)
    received: list[Json] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("hello there world"), DEPLOYMENT, timeout_s=5):
            received.append(chunk)

    with pytest.raises(UpstreamError) as caught:
        await consume()
    assert caught.value.kind == "connect"
    assert caught.value.provider == "anthropic-test"
    assert "broke the stream off" in caught.value.message
    assert received[0]["choices"][0]["delta"]["role"] == "assistant"
    assert any(c["choices"][0]["delta"].get("content") for c in received)


async def test_death_mid_body(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.die_mid_stream_next()
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    assert caught.value.kind == "connect"


async def test_stream_ending_without_message_stop(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.end_stream_early_next(after_events=5)
    with pytest.raises(UpstreamError) as caught:
        await collect(provider, ask("hello there"))
    assert caught.value.kind == "connect"
    assert "message_stop" in caught.value.message


async def test_overloaded_error_event_mid_stream(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.stream_error_next("overloaded_error")
    with pytest.raises(UpstreamError) as caught:
        await collect(provider, ask("hi"))
    assert caught.value.status == 529
    assert caught.value.retryable
    assert caught.value.provider == "anthropic-test"


async def test_scripted_refusal(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.reply([{"type": "text", "text": "I can't help with that."}], "refusal", output_tokens=6)
    resp = await provider.chat(ask("something bad"), DEPLOYMENT, timeout_s=5)
    assert resp["choices"][0]["finish_reason"] == "content_filter"
    assert resp["usage"]["completion_tokens"] == 6


async def test_embed_is_refused(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    with pytest.raises(UpstreamError) as caught:
        await provider.embed({"input": "hi"}, DEPLOYMENT, timeout_s=5)
    assert caught.value.status == 400
    assert caught.value.message == "anthropic offers no embeddings"
    assert caught.value.client_fault
    assert not fake.requests
