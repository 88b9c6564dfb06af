"""Routing: retries with backoff, Retry-After, failover, timeouts, deadlines, circuit breakers,
and what a client sees when a stream fails over, breaks off or is abandoned."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from fastapi import FastAPI
from openai.types.chat import ChatCompletionChunk

from tests.gateway.conftest import gateway_config
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import Account, assert_error, create_key, operator

MESSAGES = [{"role": "user", "content": "Hello there"}]
PRIMARY = "primary/upstream-mini"


@pytest.fixture
def primary_timeout_s() -> float | None:
    """A per-deployment timeout for gpt-4o-mini's primary deployment (tests parametrise it)."""
    return None


@pytest.fixture
def gateway_yaml(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    gateway_overrides: dict[str, Any],
    primary_timeout_s: float | None,
) -> Path:
    config = gateway_config(fake_openai.url, fake_backup.url, **gateway_overrides)
    if primary_timeout_s is not None:
        config["models"]["gpt-4o-mini"]["deployments"][0]["timeout_s"] = primary_timeout_s
    path = tmp_path / "parley.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class FakeMonotonic:
    """Stands in for time.monotonic in the router (and so in the breakers it builds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def ops(client: httpx.AsyncClient, app: FastAPI) -> Account:
    """A platform operator: provider health is theirs to read."""
    return await operator(client, app)


@pytest.fixture
def monotonic(app: FastAPI) -> FakeMonotonic:
    """Installed before the first request, so every breaker is built with it."""
    router = app.state.ctx.gateway.router
    assert not router.breakers, "breakers exist already; they would keep the real clock"
    fake = FakeMonotonic()
    router.monotonic = fake
    return fake


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def chat(
    client: httpx.AsyncClient, api_key: str, model: str = "gpt-4o-mini", **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **extra},
        headers=auth(api_key),
    )


def answered_by(response: httpx.Response, provider: str, attempts: int) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-parley-provider"] == provider
    assert response.headers["x-parley-attempts"] == str(attempts)


async def health_of(
    client: httpx.AsyncClient, headers: dict[str, str], deployment: str = PRIMARY
) -> dict[str, Any]:
    response = await client.get("/v1/providers/health", headers=headers)
    assert response.status_code == 200, response.text
    rows = [r for r in response.json()["data"] if r["deployment"] == deployment]
    assert len(rows) == 1, response.json()
    row: dict[str, Any] = rows[0]
    return row


async def drain(stream: openai.AsyncStream[ChatCompletionChunk], into: list[str]) -> None:
    async for chunk in stream:
        into.extend(c.delta.content or "" for c in chunk.choices)


def sse_data(body: str) -> list[str]:
    return [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]


# --- retries --------------------------------------------------------------------------------


async def test_transient_failures_are_retried_then_failed_over(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI
) -> None:
    fake_openai.fail_next(500)
    response = await chat(client, api_key)
    answered_by(response, "primary", 2)
    assert response.json()["choices"][0]["message"]["content"] == fake_openai.reply
    assert len(fake_openai.requests) == 2

    fake_openai.reset_next()  # the connection drops without an answer
    response = await chat(client, api_key)
    answered_by(response, "primary", 2)
    assert len(fake_openai.requests) == 4
    assert fake_backup.requests == []

    # Out of retries on primary (max_retries 1): the backup deployment answers.
    fake_openai.fail_next(500, times=2)
    response = await chat(client, api_key)
    answered_by(response, "backup", 3)
    assert response.json()["choices"][0]["message"]["content"] == fake_backup.reply
    assert response.json()["model"] == "gpt-4o-mini"
    assert len(fake_openai.requests) == 6
    assert len(fake_backup.requests) == 1
    assert fake_backup.requests[0]["model"] == "backup-mini"


async def test_a_rejected_request_is_neither_retried_nor_failed_over(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI
) -> None:
    fake_openai.fail_next(400)
    error = assert_error(await chat(client, api_key), 400, "invalid_request_error")
    assert "fake failure 400" not in error["message"]  # the provider's words stay in the log
    assert len(fake_openai.requests) == 1

    fake_openai.fail_next(422)
    assert_error(await chat(client, api_key), 400, "invalid_request_error")
    assert len(fake_openai.requests) == 2
    assert fake_backup.requests == []


async def test_auth_and_not_found_errors_fail_over_without_retrying(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI
) -> None:
    for number, status in enumerate([401, 403, 404], start=1):
        fake_openai.fail_next(status)
        response = await chat(client, api_key)
        answered_by(response, "backup", 2)
        assert response.json()["choices"][0]["message"]["content"] == fake_backup.reply
        assert len(fake_openai.requests) == number, f"{status} was retried on primary"
        assert len(fake_backup.requests) == number
    assert fake_backup.requests[-1]["model"] == "backup-mini"


# --- Retry-After ----------------------------------------------------------------------------


async def test_retry_after_is_honoured_up_to_the_max_delay(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI
) -> None:
    fake_openai.fail_next(429, retry_after="0.3")
    started = time.perf_counter()
    response = await chat(client, api_key)
    elapsed = time.perf_counter() - started
    answered_by(response, "primary", 2)
    assert elapsed >= 0.3, f"retried after {elapsed:.3f} s, before the upstream's Retry-After"
    assert fake_backup.requests == []

    # Longer than retry.max_delay_s (1 s): no waiting, the backup is tried at once.
    fake_openai.fail_next(429, retry_after="30")
    started = time.perf_counter()
    response = await chat(client, api_key)
    elapsed = time.perf_counter() - started
    answered_by(response, "backup", 2)
    assert elapsed < 1.0, f"waited {elapsed:.3f} s before failing over"
    assert len(fake_openai.requests) == 3

    # When every deployment asks for that much patience, the client is asked for it.
    fake_openai.fail_next(429, retry_after="30")
    fake_backup.fail_next(429, retry_after="30")
    response = await chat(client, api_key)
    assert_error(response, 429, "rate_limit_error", "upstream_rate_limited")
    assert response.headers["retry-after"] == "30"
    assert (len(fake_openai.requests), len(fake_backup.requests)) == (4, 2)


# --- timeouts and the deadline --------------------------------------------------------------


@pytest.mark.parametrize("primary_timeout_s", [0.3])
async def test_a_hanging_primary_times_out_and_fails_over(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI
) -> None:
    fake_openai.hang_next(0.6, times=2)
    started = time.perf_counter()
    response = await chat(client, api_key)
    elapsed = time.perf_counter() - started
    answered_by(response, "backup", 3)
    assert len(fake_openai.requests) == 2
    # Two attempts of 0.3 s each (the deployment's timeout, not the provider's 2 s).
    assert 0.6 <= elapsed < 1.5, elapsed


@pytest.mark.parametrize("gateway_overrides", [{"deadline_s": 0.5}])
async def test_the_overall_deadline_bounds_a_hanging_model(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.hang_next(0.7, times=3)  # solo: one deployment, max_retries 2, timeout 2 s
    started = time.perf_counter()
    response = await chat(client, api_key, model="solo")
    elapsed = time.perf_counter() - started
    assert_error(response, 504, "api_error")
    # Without the deadline: three attempts of up to 2 s each.
    assert 0.45 <= elapsed < 1.5, f"504 after {elapsed:.3f} s; the deadline is 0.5 s"


# --- circuit breakers -----------------------------------------------------------------------


async def open_primary(client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI) -> None:
    """Three failures in a row (threshold 3): two attempts, then one more on the next call."""
    before = len(fake_openai.requests)
    fake_openai.fail_next(500, times=3)
    answered_by(await chat(client, api_key), "backup", 3)
    answered_by(await chat(client, api_key), "backup", 2)
    assert len(fake_openai.requests) == before + 3
    assert not fake_openai.failures


async def test_an_open_breaker_skips_the_deployment_and_health_shows_it(
    client: httpx.AsyncClient,
    api_key: str,
    ops: Account,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    monotonic: FakeMonotonic,
) -> None:
    await open_primary(client, api_key, fake_openai)
    for _ in range(2):
        answered_by(await chat(client, api_key), "backup", 1)
    assert len(fake_openai.requests) == 3, "an open circuit still sent requests to primary"

    row = await health_of(client, ops.headers)
    assert row["state"] == "open"
    assert (row["provider"], row["model"]) == ("primary", "gpt-4o-mini")
    assert row["consecutive_failures"] >= 3
    assert row["recent_error_rate"] > 0
    backup = await health_of(client, ops.headers, "backup/backup-mini")
    assert (backup["state"], backup["recent_error_rate"]) == ("closed", 0)


async def test_provider_health_is_for_platform_operators_only(
    client: httpx.AsyncClient, api_key: str, account: Account, ops: Account
) -> None:
    # The providers serve every tenant: an organisation's owner or admin key sees nothing.
    inference_only = await create_key(client, account, scopes=["inference"])
    for headers in (account.headers, auth(api_key), auth(inference_only["key"])):
        forbidden = await client.get("/v1/providers/health", headers=headers)
        assert_error(forbidden, 403, "permission_error", "operator_only")
    missing = await client.get("/v1/providers/health")
    assert_error(missing, 401, "authentication_error")
    allowed = await client.get("/v1/providers/health", headers=ops.headers)
    assert allowed.status_code == 200, allowed.text
    deployments = {r["deployment"] for r in allowed.json()["data"]}
    assert {PRIMARY, "backup/backup-mini"} <= deployments


async def test_after_the_cooldown_one_probe_decides(
    client: httpx.AsyncClient,
    api_key: str,
    ops: Account,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    monotonic: FakeMonotonic,
) -> None:
    await open_primary(client, api_key, fake_openai)
    monotonic.advance(29)
    answered_by(await chat(client, api_key), "backup", 1)
    assert len(fake_openai.requests) == 3

    # Past the 30 s cooldown one probe goes to primary; it fails, and the circuit re-opens.
    monotonic.advance(2)
    assert (await health_of(client, ops.headers))["state"] == "half_open"
    fake_openai.fail_next(500)
    answered_by(await chat(client, api_key), "backup", 2)
    assert len(fake_openai.requests) == 4, "one probe, and no retry through a re-opened circuit"
    assert (await health_of(client, ops.headers))["state"] == "open"
    answered_by(await chat(client, api_key), "backup", 1)
    assert len(fake_openai.requests) == 4

    # The cooldown counts from the failed probe; the next probe succeeds and closes it.
    monotonic.advance(31)
    answered_by(await chat(client, api_key), "primary", 1)
    assert len(fake_openai.requests) == 5
    row = await health_of(client, ops.headers)
    assert (row["state"], row["consecutive_failures"]) == ("closed", 0)
    answered_by(await chat(client, api_key), "primary", 1)


async def test_a_probe_that_crashes_does_not_wedge_the_circuit(
    app: FastAPI,
    client: httpx.AsyncClient,
    api_key: str,
    ops: Account,
    fake_openai: FakeOpenAI,
    monotonic: FakeMonotonic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await open_primary(client, api_key, fake_openai)
    monotonic.advance(31)
    provider = app.state.ctx.gateway.providers["primary"]

    async def crash(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in a provider, not an upstream failure")

    monkeypatch.setattr(provider, "chat", crash)
    gateway = app.state.ctx.gateway
    spec = gateway.catalog.resolve("gpt-4o-mini")
    with pytest.raises(RuntimeError):  # straight to the router: the app would log a traceback
        await gateway.router.chat(spec, {"model": "gpt-4o-mini", "messages": MESSAGES})
    monkeypatch.undo()
    # The probe ended without a verdict: its slot is free, the next call probes again.
    answered_by(await chat(client, api_key), "primary", 1)
    assert (await health_of(client, ops.headers))["state"] == "closed"


async def test_every_deployment_open_is_a_fast_503(
    client: httpx.AsyncClient,
    api_key: str,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    monotonic: FakeMonotonic,
) -> None:
    fake_openai.fail_next(500, times=3)
    fake_backup.fail_next(500, times=3)
    assert_error(await chat(client, api_key), 502, "api_error", "upstream_error")
    assert_error(await chat(client, api_key), 502, "api_error", "upstream_error")
    seen = (len(fake_openai.requests), len(fake_backup.requests))
    assert seen == (3, 3)

    started = time.perf_counter()
    response = await chat(client, api_key)
    elapsed = time.perf_counter() - started
    assert_error(response, 503, "api_error", "no_deployment_available")
    assert 1 <= int(response.headers["retry-after"]) <= 31
    assert (len(fake_openai.requests), len(fake_backup.requests)) == seen
    assert elapsed < 1.0, elapsed

    # Streams are refused the same way.
    response = await chat(client, api_key, stream=True)
    assert_error(response, 503, "api_error", "no_deployment_available")
    assert (len(fake_openai.requests), len(fake_backup.requests)) == seen


# --- streaming ------------------------------------------------------------------------------


async def test_a_stream_fails_over_before_its_first_byte(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI
) -> None:
    fake_openai.fail_next(500, times=2)
    response = await chat(client, api_key, stream=True)
    answered_by(response, "backup", 3)
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    assert all("error" not in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == fake_backup.reply
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert {c["model"] for c in chunks} == {"gpt-4o-mini"}
    assert (len(fake_openai.requests), fake_openai.completed_streams) == (2, 0)


async def test_a_stream_that_dies_midway_ends_with_an_error_event(
    client: httpx.AsyncClient,
    live_sdk: openai.AsyncOpenAI,
    api_key: str,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
) -> None:
    # The fake sends the role chunk, then one word per `stream_delay_s`, then drops the
    # connection right after its last word: that last word may be lost with the connection,
    # the earlier ones were relayed before it broke.
    fake_openai.stream_delay_s = 0.05
    reply = fake_openai.reply
    fake_openai.die_mid_stream_next(after_chunks=3)
    response = await chat(client, api_key, stream=True)
    assert response.status_code == 200  # the headers had gone out already
    data = sse_data(response.text)
    assert "[DONE]" not in data, "a broken stream must not look complete"
    *chunks, last = (orjson.loads(d) for d in data)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.startswith("Hello from "), text
    assert "Hello from the ".startswith(text), text
    assert last["error"]["type"] == "api_error"
    assert last["error"]["code"] == "upstream_interrupted"
    # A stable message, the failure's class and where the details are; not the provider's text.
    assert last["error"]["message"] == (
        "The provider broke off the reply (connection failure); the details are logged under "
        f"request id {response.headers['x-request-id']}."
    )
    assert fake_backup.requests == [], "no failover once bytes reached the client"

    # The official SDK turns that event into an exception: never a silent truncation.
    fake_openai.die_mid_stream_next(after_chunks=3)
    stream = await live_sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        await drain(stream, received)
    text = "".join(received)
    assert text.startswith("Hello from "), text
    assert reply.startswith(text), text
    assert text != reply
    assert "broke off" in raised.value.message


async def test_a_client_disconnect_cancels_the_upstream_stream(
    live_url: str, api_key: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.stream_delay_s = 0.25  # the whole reply would take over 2 s
    async with httpx.AsyncClient(base_url=live_url, timeout=10) as http:
        request = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        async with http.stream(
            "POST", "/v1/chat/completions", json=request, headers=auth(api_key)
        ) as response:
            assert response.status_code == 200
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data.append(line)
                if len(data) == 2:
                    break
    for _ in range(60):
        if fake_openai.cancelled_streams:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.cancelled_streams == 1, "the upstream stream outlived the client"
    assert fake_openai.completed_streams == 0
