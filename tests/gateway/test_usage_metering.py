"""Usage metering: one event per inference request in `usage_events`, written off the hot path.

The recorder flushes every hour here, so a row only reaches the table when a test flushes
(or the app shuts down): what a test reads is exactly what was recorded, with no race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from parley.app import create_app
from parley.config import Settings
from parley.kit.tokens import count_text
from parley.usage.models import UsageEvent
from parley.usage.recorder import Usage
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import Account, FakeClock, create_key, register

INPUT_MICROS_PER_MTOK = 150_000  # gpt-4o-mini: 0.15 USD per million input tokens
OUTPUT_MICROS_PER_MTOK = 600_000  # and 0.60 per million output tokens


@pytest.fixture
def settings(make_settings: Callable[..., Settings], gateway_yaml: Path) -> Settings:
    return make_settings(config=gateway_yaml, usage_flush_s=3600)


@pytest.fixture
async def key(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    """An inference key, with its id (what usage events name)."""
    return await create_key(client, account, scopes=["inference"])


def cost(prompt: int, completion: int) -> int:
    """Micro-USD, rounded half up, in integers only."""
    return (prompt * INPUT_MICROS_PER_MTOK + completion * OUTPUT_MICROS_PER_MTOK + 500_000) // (
        1_000_000
    )


async def usage_rows(app: FastAPI, *, flush: bool = True) -> list[UsageEvent]:
    ctx = app.state.ctx
    if flush:
        await ctx.usage_recorder.flush()
    async with ctx.db.session() as session:
        result = await session.scalars(select(UsageEvent).order_by(UsageEvent.id))
        return list(result)


async def only_row(app: FastAPI, request_id: str) -> UsageEvent:
    rows = await usage_rows(app)
    assert [r.id for r in rows] == [request_id], "one request, one usage event"
    return rows[0]


async def post(
    client: httpx.AsyncClient, secret: str, path: str = "/v1/chat/completions", **body: Any
) -> httpx.Response:
    body.setdefault("model", "gpt-4o-mini")
    if path.endswith("/chat/completions"):
        body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return await client.post(path, json=body, headers={"Authorization": f"Bearer {secret}"})


async def test_a_chat_completion_is_metered_once_at_the_exact_price(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    key: dict[str, Any],
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
) -> None:
    # The fake counts words: 10 prompt and 5 completion tokens cost 4.5 micro-USD, so
    # rounding half up (5) differs from truncating or rounding half to even (4).
    fake_openai.reply = "one two three four five"
    words = "a b c d e f g h i j"
    response = await post(client, key["key"], messages=[{"role": "user", "content": words}])
    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    row = await only_row(app, response.headers["x-request-id"])
    assert row.org_id == account.org_id
    assert row.api_key_id == key["id"]
    assert row.user_id is None
    assert (row.endpoint, row.model, row.stream) == ("chat", "gpt-4o-mini", False)
    assert (row.provider, row.deployment_model, row.attempts) == ("primary", "upstream-mini", 1)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (10, 5, 15)
    assert row.cost_micros == cost(10, 5) == 5
    assert row.currency == "USD"
    assert row.latency_ms >= 0
    assert row.ttft_ms is None
    assert (row.status, row.error_type) == ("ok", None)
    assert row.created_at.tzinfo is not None
    assert abs(row.created_at - datetime.now(UTC)).total_seconds() < 3600

    # After a failover the event names the deployment that answered and every attempt.
    fake_openai.fail_next(500, times=2)
    response = await post(client, key["key"])
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    rows = {r.id: r for r in await usage_rows(app)}
    assert len(rows) == 2
    row = rows[request_id]
    assert (row.provider, row.deployment_model, row.attempts) == ("backup", "backup-mini", 3)
    usage = response.json()["usage"]
    assert (row.prompt_tokens, row.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row.cost_micros == cost(row.prompt_tokens, row.completion_tokens) > 0
    assert row.status == "ok"


async def test_streams_are_metered_with_ttft_even_without_upstream_usage(
    app: FastAPI, client: httpx.AsyncClient, key: dict[str, Any], fake_openai: FakeOpenAI
) -> None:
    response = await post(client, key["key"], stream=True)
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    first_id = response.headers["x-request-id"]
    row = await only_row(app, first_id)
    assert (row.endpoint, row.stream, row.status) == ("chat", True, "ok")
    assert (row.provider, row.deployment_model, row.attempts) == ("primary", "upstream-mini", 1)
    # The fake's usage chunk reports 7 prompt tokens and one completion token per word.
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (7, 9, 16)
    assert row.cost_micros == (7 * 150_000 + 9 * 600_000 + 500_000) // 1_000_000
    assert row.ttft_ms is not None
    assert 0 <= row.ttft_ms <= row.latency_ms

    fake_openai.include_usage = False  # an upstream that never says: Parley counts itself
    response = await post(client, key["key"], stream=True)
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    rows = {r.id: r for r in await usage_rows(app)}
    assert set(rows) == {first_id, response.headers["x-request-id"]}
    row = rows[response.headers["x-request-id"]]
    assert (row.stream, row.status) == (True, "ok")
    assert row.completion_tokens == count_text(fake_openai.reply, "gpt-4o-mini") > 0
    assert row.prompt_tokens > 0
    assert row.total_tokens == row.prompt_tokens + row.completion_tokens
    assert row.cost_micros == cost(row.prompt_tokens, row.completion_tokens)
    assert row.ttft_ms is not None


async def test_a_stream_that_dies_midway_is_metered_as_incomplete(
    app: FastAPI, client: httpx.AsyncClient, key: dict[str, Any], fake_openai: FakeOpenAI
) -> None:
    fake_openai.stream_delay_s = 0.05
    fake_openai.die_mid_stream_next(after_chunks=3)
    response = await post(client, key["key"], stream=True)
    assert response.status_code == 200
    assert '"upstream_interrupted"' in response.text
    row = await only_row(app, response.headers["x-request-id"])
    assert (row.status, row.error_type, row.stream) == ("incomplete", "upstream_interrupted", True)
    assert (row.provider, row.attempts) == ("primary", 1)
    # No usage chunk arrived: what did arrive ("Hello from " at least) is counted offline.
    whole = count_text(fake_openai.reply, "gpt-4o-mini")
    assert count_text("Hello from ", "gpt-4o-mini") <= row.completion_tokens < whole
    assert row.prompt_tokens > 0
    assert row.cost_micros == cost(row.prompt_tokens, row.completion_tokens)


async def test_a_failed_request_is_metered_as_an_error_at_no_cost(
    app: FastAPI,
    client: httpx.AsyncClient,
    key: dict[str, Any],
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
) -> None:
    fake_openai.fail_next(500, times=2)
    fake_backup.fail_next(500, times=2)
    response = await post(client, key["key"])
    assert response.status_code == 502, response.text
    row = await only_row(app, response.headers["x-request-id"])
    assert (row.status, row.error_type) == ("error", "upstream_error")
    assert (row.prompt_tokens, row.completion_tokens, row.cost_micros) == (0, 0, 0)
    assert row.attempts == 4, "every upstream attempt is on the record"
    assert row.provider == "backup"  # the last deployment tried

    # A stream that cannot open is one error event too. (One more failure each opens both
    # circuits, at threshold 3: no second attempt on either.)
    fake_openai.fail_next(500)
    fake_backup.fail_next(500)
    response = await post(client, key["key"], stream=True)
    assert response.status_code == 502, response.text
    rows = {r.id: r for r in await usage_rows(app)}
    assert len(rows) == 2
    row = rows[response.headers["x-request-id"]]
    assert (row.status, row.stream, row.cost_micros) == ("error", True, 0)
    assert (row.attempts, row.provider) == (2, "backup")


async def test_a_client_disconnect_is_metered_as_cancelled(
    app: FastAPI, live_url: str, key: dict[str, Any], fake_openai: FakeOpenAI
) -> None:
    fake_openai.stream_delay_s = 0.25
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Tell me a long story"}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {key['key']}"}
    async with (
        httpx.AsyncClient(base_url=live_url, timeout=10) as http,
        http.stream("POST", "/v1/chat/completions", json=request, headers=headers) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        lines = 0
        async for line in response.aiter_lines():
            lines += line.startswith("data: ")
            if lines == 2:
                break
    rows: list[UsageEvent] = []
    for _ in range(60):
        rows = await usage_rows(app)
        if rows:
            break
        await asyncio.sleep(0.05)
    assert [r.id for r in rows] == [request_id]
    row = rows[0]
    assert (row.status, row.error_type, row.stream) == ("cancelled", "client_disconnected", True)
    assert row.provider == "primary"
    assert row.completion_tokens < count_text(fake_openai.reply, "gpt-4o-mini")
    assert row.cost_micros == cost(row.prompt_tokens, row.completion_tokens)


async def test_a_client_that_leaves_before_the_first_byte_is_metered_as_cancelled(
    app: FastAPI, live_url: str, key: dict[str, Any], fake_openai: FakeOpenAI
) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    calls = [
        ("/v1/chat/completions", {**chat, "stream": True}, "chat", True),
        ("/v1/chat/completions", chat, "chat", False),
        ("/v1/embeddings", {"model": "embed-small", "input": "hello"}, "embeddings", False),
    ]
    fake_openai.hang_next(0.5, times=len(calls))  # no answer before the client gives up
    headers = {"Authorization": f"Bearer {key['key']}"}
    async with httpx.AsyncClient(base_url=live_url, timeout=10) as http:
        for path, body, _, _ in calls:
            seen = len(fake_openai.requests)
            task = asyncio.create_task(http.post(path, json=body, headers=headers))
            for _ in range(200):  # until the upstream call is under way
                if len(fake_openai.requests) > seen:
                    break
                await asyncio.sleep(0.01)
            task.cancel()  # then hang up
            with pytest.raises(asyncio.CancelledError):
                await task
    rows: list[UsageEvent] = []
    for _ in range(60):
        rows = await usage_rows(app)
        if len(rows) == len(calls):
            break
        await asyncio.sleep(0.05)
    assert sorted((r.endpoint, r.stream) for r in rows) == sorted((c[2], c[3]) for c in calls)
    for row in rows:
        assert (row.status, row.error_type) == ("cancelled", "client_disconnected")
        assert (row.provider, row.attempts, row.cost_micros) == ("primary", 1, 0)


async def test_embeddings_are_metered(
    app: FastAPI, client: httpx.AsyncClient, key: dict[str, Any]
) -> None:
    # 25 input tokens at 0.02 USD per million: 0.5 micro-USD, rounded half up to 1.
    text = " ".join(["word"] * 25)
    response = await post(client, key["key"], "/v1/embeddings", model="embed-small", input=text)
    assert response.status_code == 200, response.text
    row = await only_row(app, response.headers["x-request-id"])
    assert (row.endpoint, row.model, row.stream) == ("embeddings", "embed-small", False)
    assert (row.provider, row.deployment_model) == ("primary", "upstream-embed")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (25, 0, 25)
    assert row.cost_micros == 1
    assert (row.status, row.api_key_id) == ("ok", key["id"])


async def test_the_same_request_is_never_recorded_twice(
    app: FastAPI, client: httpx.AsyncClient, key: dict[str, Any], account: Account
) -> None:
    recorder = app.state.ctx.usage_recorder
    usage = Usage(
        id="req_0000duplicate0000",
        org_id=account.org_id,
        api_key_id=key["id"],
        user_id=None,
        endpoint="chat",
        model="gpt-4o-mini",
        provider="primary",
        deployment_model="upstream-mini",
        attempts=1,
        stream=False,
        prompt_tokens=7,
        completion_tokens=9,
        reasoning_tokens=0,
        total_tokens=16,
        cost_micros=cost(7, 9),
        latency_ms=12,
        ttft_ms=None,
        status="ok",
        error_type=None,
        created_at=datetime.now(UTC),
    )
    recorder.record(usage)
    recorder.record(usage)
    assert await recorder.flush() == 2
    assert [r.id for r in await usage_rows(app)] == [usage.id]

    # A replay after the first write (another flush, another process) is ignored too.
    response = await post(client, key["key"])
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    await usage_rows(app)
    recorder.record(Usage(**{**_fields(usage), "id": request_id, "status": "error"}))
    recorder.record(usage)
    rows = {r.id: r for r in await usage_rows(app)}
    assert set(rows) == {usage.id, request_id}
    assert rows[request_id].status == "ok", "the first record stands"
    assert recorder.pending == 0


def _fields(usage: Usage) -> dict[str, Any]:
    return {name: getattr(usage, name) for name in Usage.__slots__}


async def test_the_hot_path_does_not_write_and_shutdown_flushes(
    settings: Settings, clock: FakeClock, redis_cleanup: None, fake_openai: FakeOpenAI
) -> None:
    application = create_app(settings, clock=clock, configure_logs=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as http:
            account = await register(http)
            secret = (await create_key(http, account))["key"]
            response = await post(http, secret)
            assert response.status_code == 200, response.text
            streamed = await post(http, secret, stream=True)
            assert streamed.status_code == 200
        request_ids = {response.headers["x-request-id"], streamed.headers["x-request-id"]}
        # Answered, yet nothing written: the events wait in memory for the next flush.
        assert application.state.ctx.usage_recorder.pending == 2
        assert await usage_rows(application, flush=False) == []
    # Leaving the lifespan is a graceful shutdown: it flushes what was pending.
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            ids = set((await conn.execute(select(UsageEvent.id))).scalars())
    finally:
        await engine.dispose()
    assert ids == request_ids
