"""GeminiProvider against a fake Gemini API on loopback."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from parley.gateway.errors import UpstreamError
from parley.gateway.providers.base import Deployment, ProviderSettings
from parley.gateway.providers.gemini import GeminiProvider
from tests.gateway.fakes.gemini_server import THOUGHT_TOKENS, FakeGemini
from tests.gateway.formats.samples import LOOKUP_TOOLS, ask

Json = dict[str, Any]
DEPLOYMENT = Deployment(provider="gemini-test", model="gemini-fake-flash")
EMBEDDER = Deployment(provider="gemini-test", model="gemini-embedding-fake")


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini()
    await server.start()
    yield server
    await server.stop()


def make_provider(fake: FakeGemini, api_key: str = "gm-test-key") -> GeminiProvider:
    return GeminiProvider(
        ProviderSettings(name="gemini-test", type="gemini", base_url=fake.url, api_key=api_key)
    )


@pytest.fixture
async def provider(fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    provider = make_provider(fake)
    await provider.start()
    yield provider
    await provider.close()


async def collect(provider: GeminiProvider, request: Json, timeout_s: float = 5) -> list[Json]:
    return [c async for c in provider.stream(request, DEPLOYMENT, timeout_s=timeout_s)]


# --------------------------------------------------------------------- provider


async def test_chat(provider: GeminiProvider, fake: FakeGemini) -> None:
    resp = await provider.chat(ask("hello there", max_tokens=64), DEPLOYMENT, timeout_s=5)
    openai.types.chat.ChatCompletion.model_validate(resp)
    assert resp["model"] == "gemini-fake-flash"
    assert resp["choices"][0]["message"]["content"] == "Echo: hello there"
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"]["prompt_tokens"] > 0
    (sent,) = fake.requests
    assert sent.path == "/v1beta/models/gemini-fake-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "gm-test-key"
    assert "key" not in sent.query
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 64},
    }


async def test_chat_candidates_and_length(provider: GeminiProvider) -> None:
    resp = await provider.chat(ask("a b c d e f", n=2, max_tokens=3), DEPLOYMENT, timeout_s=5)
    assert [c["index"] for c in resp["choices"]] == [0, 1]
    assert resp["choices"][0]["message"]["content"] == "Echo: a b"
    assert {c["finish_reason"] for c in resp["choices"]} == {"length"}


async def test_chat_tool_call_and_result(provider: GeminiProvider, fake: FakeGemini) -> None:
    first = await provider.chat(ask("serendipity", tools=LOOKUP_TOOLS), DEPLOYMENT, timeout_s=5)
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"query": "serendipity"}

    follow_up = ask("serendipity", tools=LOOKUP_TOOLS)
    follow_up["messages"] += [
        message,
        {"role": "tool", "tool_call_id": call["id"], "content": '{"definition": "luck"}'},
    ]
    second = await provider.chat(follow_up, DEPLOYMENT, timeout_s=5)
    assert second["choices"][0]["message"]["content"] == "Tool said: {'definition': 'luck'}"
    sent = fake.requests[1].json["contents"]
    assert sent[-2] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "lookup", "args": {"query": "serendipity"}}}],
    }
    assert sent[-1] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "lookup", "response": {"definition": "luck"}}}],
    }


async def test_chat_reasoning_tokens(provider: GeminiProvider, fake: FakeGemini) -> None:
    resp = await provider.chat(ask("why?", reasoning_effort="low"), DEPLOYMENT, timeout_s=5)
    assert fake.requests[0].json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}
    usage = resp["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": THOUGHT_TOKENS}
    assert usage["completion_tokens"] > THOUGHT_TOKENS


async def test_chat_safety_block(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.reply([], "SAFETY", candidatesTokenCount=0)
    resp = await provider.chat(ask("something bad"), DEPLOYMENT, timeout_s=5)
    assert resp["choices"][0]["finish_reason"] == "content_filter"


async def test_stream_text(provider: GeminiProvider, fake: FakeGemini) -> None:
    chunks = await collect(provider, ask("one two three four five", reasoning_effort="medium"))
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    sent = fake.requests[0]
    assert sent.path == "/v1beta/models/gemini-fake-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Echo: one two three four five"
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": THOUGHT_TOKENS}


async def test_stream_tool_call(provider: GeminiProvider) -> None:
    chunks = await collect(provider, ask("quokka", tools=LOOKUP_TOOLS))
    calls = [
        call
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    (call,) = calls
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"query": "quokka"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_stream_several_candidates(provider: GeminiProvider) -> None:
    chunks = await collect(provider, ask("hi", n=2))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: "Echo: hi", 1: "Echo: hi #1"}


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable"),
    [(429, 3, True), (503, None, True), (500, None, True), (400, None, False), (403, None, False)],
)
async def test_errors_map_to_upstream_error(
    provider: GeminiProvider,
    fake: FakeGemini,
    status: int,
    retry_after: int | None,
    retryable: bool,
) -> None:
    fake.fail_next(status, times=3, retry_after=retry_after)
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    error = caught.value
    assert error.status == status
    assert error.retryable is retryable
    assert error.retry_after_s == (float(retry_after) if retry_after else None)
    assert error.message == f"injected failure {status}"
    assert error.provider == "gemini-test"
    with pytest.raises(UpstreamError) as caught_stream:
        await collect(provider, ask("hi"))
    assert caught_stream.value.status == status
    with pytest.raises(UpstreamError) as caught_embed:
        await provider.embed({"input": "hi"}, EMBEDDER, timeout_s=5)
    assert caught_embed.value.status == status
    assert (await provider.chat(ask("ok"), DEPLOYMENT, timeout_s=5))["choices"]


async def test_wrong_api_key(fake: FakeGemini) -> None:
    provider = make_provider(fake, api_key="wrong")
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    finally:
        await provider.close()
    assert caught.value.status == 400
    assert "API key not valid" in caught.value.message
    assert not caught.value.retryable


async def test_hang_is_a_timeout(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.hang_next(10)
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=0.3)
    assert caught.value.kind == "timeout"
    assert caught.value.retryable
    fake.hang_next(10)
    with pytest.raises(UpstreamError) as caught_stream:
        await collect(provider, ask("hi"), timeout_s=0.3)
    assert caught_stream.value.kind == "timeout"


async def test_connection_reset(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.reset_next()
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(ask("hi"), DEPLOYMENT, timeout_s=5)
    assert caught.value.kind == "connect"
    assert caught.value.retryable


async def test_death_mid_stream(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.die_mid_stream_next(after_events=1)
    received: list[Json] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("a b c d e f g h"), DEPLOYMENT, timeout_s=5):
            received.append(chunk)

    with pytest.raises(UpstreamError) as caught:
        await consume()
    assert caught.value.kind == "connect"
    assert caught.value.provider == "gemini-test"
    assert "broke the stream off" in caught.value.message
    assert received[0]["choices"][0]["delta"]["role"] == "assistant"


async def test_stream_ending_before_finish(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.end_stream_early_next(after_events=2)
    received: list[Json] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("a b c d e f g h"), DEPLOYMENT, timeout_s=5):
            received.append(chunk)

    with pytest.raises(UpstreamError) as caught:
        await consume()
    assert caught.value.kind == "connect"
    assert caught.value.retryable
    assert received
    assert "before it finished" in caught.value.message


async def test_embed(provider: GeminiProvider, fake: FakeGemini) -> None:
    resp = await provider.embed(
        {"model": "alias", "input": ["hello", "world"], "dimensions": 8}, EMBEDDER, timeout_s=5
    )
    openai.types.CreateEmbeddingResponse.model_validate(resp)
    assert resp["model"] == "gemini-embedding-fake"
    assert [d["index"] for d in resp["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in resp["data"])
    assert resp["usage"]["prompt_tokens"] == resp["usage"]["total_tokens"] > 0
    (sent,) = fake.requests
    assert sent.path == "/v1beta/models/gemini-embedding-fake:batchEmbedContents"
    assert sent.json == {
        "requests": [
            {
                "model": "models/gemini-embedding-fake",
                "content": {"parts": [{"text": "hello"}]},
                "outputDimensionality": 8,
            },
            {
                "model": "models/gemini-embedding-fake",
                "content": {"parts": [{"text": "world"}]},
                "outputDimensionality": 8,
            },
        ]
    }


async def test_embed_base64(provider: GeminiProvider) -> None:
    floats = await provider.embed({"input": "hi", "dimensions": 4}, EMBEDDER, timeout_s=5)
    packed = await provider.embed(
        {"input": "hi", "dimensions": 4, "encoding_format": "base64"}, EMBEDDER, timeout_s=5
    )
    decoded = struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats["data"][0]["embedding"], rel=1e-6)


async def test_embed_refuses_token_arrays(provider: GeminiProvider) -> None:
    with pytest.raises(ValueError, match="string"):
        await provider.embed({"input": [[1, 2, 3]]}, EMBEDDER, timeout_s=5)
