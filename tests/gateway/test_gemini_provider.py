"""GeminiProvider and its translation, against a fake Gemini API on loopback."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from parley.gateway.errors import UpstreamError
from parley.gateway.gemini_format import (
    gemini_schema,
    gemini_to_openai_response,
    openai_to_gemini_request,
)
from parley.gateway.providers.base import Deployment, ProviderSettings
from parley.gateway.providers.gemini import GeminiProvider
from tests.gateway.fakes.gemini_server import THOUGHT_TOKENS, FakeGemini

Json = dict[str, Any]
DEPLOYMENT = Deployment(provider="gemini-test", model="gemini-fake-flash")
EMBEDDER = Deployment(provider="gemini-test", model="gemini-embedding-fake")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }
]


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


def ask(text: str, **extra: Any) -> Json:
    return {
        "model": "parley-alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text},
        ],
        **extra,
    }


async def collect(provider: GeminiProvider, request: Json, timeout_s: float = 5) -> list[Json]:
    return [c async for c in provider.stream(request, DEPLOYMENT, timeout_s=timeout_s)]


# ------------------------------------------------------------------ translation


def test_request_translation() -> None:
    body = openai_to_gemini_request(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png?s=1"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"query": "pixel"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"query": "png"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"meaning": "a dot"}'},
                {"role": "tool", "tool_call_id": "call_2", "content": "an image format"},
            ],
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "temperature": 0.4,
            "top_p": 0.8,
            "max_completion_tokens": 300,
            "stop": "END",
            "n": 2,
            "seed": 11,
            "reasoning_effort": "high",
            "response_format": {"type": "json_object"},
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    user, model, results = body["contents"]
    assert user == {
        "role": "user",
        "parts": [
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/cat.png?s=1"}},
        ],
    }
    assert model == {
        "role": "model",
        "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "lookup", "args": {"query": "pixel"}}},
            {"functionCall": {"name": "lookup", "args": {"query": "png"}}},
        ],
    }
    # Parallel results answer in one turn, each named after the call it answers.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "lookup", "response": {"meaning": "a dot"}}},
            {"functionResponse": {"name": "lookup", "response": {"result": "an image format"}}},
        ],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup",
                    "description": "Look a word up",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"query": {"type": "STRING"}},
                        "required": ["query"],
                    },
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}
    }
    assert body["generationConfig"] == {
        "temperature": 0.4,
        "topP": 0.8,
        "maxOutputTokens": 300,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 11,
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 16384},
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
    ],
)
def test_tool_choice(choice: str, config: Json) -> None:
    body = openai_to_gemini_request(ask("hi", tools=TOOLS, tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_json_schema_becomes_a_gemini_schema() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Who"},
            "age": {"type": ["integer", "null"]},
            "pet": {"$ref": "#/$defs/Pet"},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "kind": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {"Pet": {"type": "object", "properties": {"legs": {"type": "number"}}}},
    }
    body = openai_to_gemini_request(
        ask(
            "Describe",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema, "strict": True},
            },
        )
    )
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "description": "Who"},
            "age": {"type": "INTEGER", "nullable": True},
            "pet": {"type": "OBJECT", "properties": {"legs": {"type": "NUMBER"}}},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
            "kind": {"type": "STRING", "nullable": True},
        },
        "required": ["name"],
    }
    assert gemini_schema(None) == {}


@pytest.mark.parametrize(
    ("reason", "has_calls", "finish"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("OTHER", False, "stop"),
    ],
)
def test_finish_reasons(reason: str, has_calls: bool, finish: str) -> None:
    parts: list[Json] = [{"text": "x"}]
    if has_calls:
        parts.append({"functionCall": {"name": "f", "args": {}}})
    resp = gemini_to_openai_response(
        {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason}]},
        "g",
    )
    assert resp["choices"][0]["finish_reason"] == finish


def test_response_usage_and_thoughts() -> None:
    resp = gemini_to_openai_response(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Pondering...", "thought": True},
                            {"text": "Forty-two."},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 4,
                "thoughtsTokenCount": 30,
                "cachedContentTokenCount": 6,
                "totalTokenCount": 44,
            },
            "responseId": "abc",
        },
        "gemini-x",
    )
    openai.types.chat.ChatCompletion.model_validate(resp)
    assert resp["id"] == "chatcmpl-abc"
    assert resp["choices"][0]["message"]["content"] == "Forty-two."
    assert resp["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 34,
        "total_tokens": 44,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


def test_blocked_prompt() -> None:
    resp = gemini_to_openai_response(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}},
        "g",
    )
    assert resp["choices"][0]["finish_reason"] == "content_filter"
    assert resp["choices"][0]["message"]["content"] is None


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
    first = await provider.chat(ask("serendipity", tools=TOOLS), DEPLOYMENT, timeout_s=5)
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"query": "serendipity"}

    follow_up = ask("serendipity", tools=TOOLS)
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
    chunks = await collect(provider, ask("quokka", tools=TOOLS))
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
