"""The official `openai` SDK, pointed at Parley, works unchanged."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import Account, create_key


async def test_chat_completion(sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi there"}], temperature=0.2
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == fake_openai.reply
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-parley-provider"] == "primary"
    assert raw.headers["x-parley-attempts"] == "1"
    assert raw.headers["x-request-id"].startswith("req_")
    sent = fake_openai.requests[-1]
    assert sent["model"] == "upstream-mini"
    assert sent["temperature"] == 0.2
    assert fake_openai.headers_seen[-1]["Authorization"] == "Bearer sk-upstream-primary"


async def test_alias_resolves(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.model == "gpt-4o-mini"


async def test_streaming(live_sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI) -> None:
    stream = await live_sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(text) == fake_openai.reply
    assert usage is not None
    assert usage.completion_tokens == len(fake_openai.reply.split())


async def test_streaming_without_usage_hides_the_usage_chunk(
    live_sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    stream = await live_sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # Parley still asked the upstream for usage, to meter the stream.
    assert fake_openai.requests[-1]["stream_options"] == {"include_usage": True}


async def test_tool_calls(sdk: openai.AsyncOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_streamed_tool_call_deltas(live_sdk: openai.AsyncOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    stream = await live_sdk.chat.completions.create(
        model="parley-mock",
        messages=[{"role": "user", "content": "find cats"}],
        tools=tools,
        stream=True,
    )
    name, arguments, finish = "", "", None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                name += call.function.name or "" if call.function else ""
                arguments += call.function.arguments or "" if call.function else ""
            finish = choice.finish_reason or finish
    assert name == "lookup"
    assert json.loads(arguments) == {"input": "find cats"}
    assert finish == "tool_calls"


async def test_embeddings(sdk: openai.AsyncOpenAI) -> None:
    single = await sdk.embeddings.create(model="embed-small", input="hello world")
    assert len(single.data) == 1
    assert len(single.data[0].embedding) == 8
    many = await sdk.embeddings.create(model="embed-small", input=["a", "b c"], dimensions=4)
    assert [len(d.embedding) for d in many.data] == [4, 4]
    assert many.usage.prompt_tokens == 3


async def test_models(sdk: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in sdk.models.list()]
    assert {"gpt-4o-mini", "solo", "parley-mock", "embed-small"} <= set(ids)
    model = await sdk.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("no-such-model")


async def test_typed_errors(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
) -> None:
    transport = httpx.ASGITransport(app=app)

    def sdk_with(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key,
            base_url="http://parley.test/v1",
            http_client=httpx.AsyncClient(transport=transport),
            max_retries=0,
        )

    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.AuthenticationError) as auth:
        await sdk_with("sk-parley-not-a-real-key").chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
        )
    assert auth.value.code == "invalid_api_key"

    admin_only = await create_key(client, account, scopes=["admin"])
    with pytest.raises(openai.PermissionDeniedError):
        await sdk_with(admin_only["key"]).chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
        )

    key = (await create_key(client, account, scopes=["inference"]))["key"]
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk_with(key).chat.completions.create(model="gpt-5-nope", messages=messages)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as bad:
        await sdk_with(key).chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            temperature=5,  # type: ignore[arg-type]
        )
    assert bad.value.param == "temperature"

    fake_openai.fail_next(429, times=2, retry_after="0")
    fake_backup.fail_next(429, times=2, retry_after="0")
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk_with(key).chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert limited.value.response.headers.get("retry-after")
