"""A provider's error text never reaches a client: clients read a stable message with the kind
of failure and the request id; the provider's words are logged, with keys masked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml
from fastapi import FastAPI

from parley.gateway import errors
from parley.gateway.errors import StreamInterrupted, UpstreamError, stream_broke_off
from parley.http import middleware
from tests.gateway.conftest import gateway_config
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.logcapture import capture_logs, lines
from tests.support import assert_error

UPSTREAM_KEY = "sk-proj-Q1w2E3r4T5y6U7i8O9p0AsDfGhJkL"
LEAK = f"Incorrect API key provided: {UPSTREAM_KEY}. Internal host billing-db.corp:5432 is down"


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    with capture_logs(monkeypatch, errors, middleware) as buffer:
        yield buffer


async def chat(client: httpx.AsyncClient, api_key: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], **extra},
        headers={"Authorization": f"Bearer {api_key}"},
    )


def failures_logged(log_output: io.StringIO, request_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in lines(log_output)
        if e["event"] == "gateway.attempt_failed" and e.get("request_id") == request_id
    ]


def assert_nothing_leaks(error: dict[str, Any]) -> None:
    for piece in ("Incorrect API key", UPSTREAM_KEY[:12], "billing-db", "fake failure"):
        assert piece not in error["message"], error


@pytest.mark.parametrize(
    ("status", "http", "type_", "code", "words"),
    [
        (400, 400, "invalid_request_error", "upstream_rejected_request", "rejected the request"),
        (422, 400, "invalid_request_error", "upstream_rejected_request", "rejected the request"),
        (500, 502, "api_error", "upstream_error", "of gpt-4o-mini failed"),
        (503, 502, "api_error", "upstream_error", "of gpt-4o-mini failed"),
        (429, 429, "rate_limit_error", "upstream_rate_limited", "are rate limiting Parley"),
    ],
)
async def test_clients_get_the_status_class_and_request_id_the_log_gets_the_text(
    client: httpx.AsyncClient,
    api_key: str,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    log_output: io.StringIO,
    status: int,
    http: int,
    type_: str,
    code: str,
    words: str,
) -> None:
    fake_openai.fail_next(status, times=2, message=LEAK)
    fake_backup.fail_next(status, times=2, message=LEAK)
    response = await chat(client, api_key)
    error = assert_error(response, http, type_, code)
    request_id = response.headers["x-request-id"]
    assert error["message"].endswith(
        f"{words} (HTTP {status // 100}xx); the details are logged under request id {request_id}."
    )
    assert_nothing_leaks(error)

    logged = failures_logged(log_output, request_id)
    assert logged, "the provider's words must be logged"
    masked = LEAK.replace(UPSTREAM_KEY, "sk-proj-***")
    assert {(e["status"], e["error"]) for e in logged} == {(status, masked)}
    assert UPSTREAM_KEY not in log_output.getvalue()


@pytest.fixture
def gateway_yaml(tmp_path: Path, fake_openai: FakeOpenAI, fake_backup: FakeOpenAI) -> Path:
    config = gateway_config(fake_openai.url, fake_backup.url)
    config["models"]["solo"]["deployments"][0].update(timeout_s=0.2, max_retries=0)
    path = tmp_path / "parley.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_a_timeout_says_so_without_the_provider_s_words(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, log_output: io.StringIO
) -> None:
    fake_openai.hang_next(1.0)
    response = await chat(client, api_key, model="solo")
    error = assert_error(response, 504, "api_error", "upstream_timeout")
    request_id = response.headers["x-request-id"]
    assert error["message"] == (
        "The providers of solo did not answer in time (timeout); the details are logged "
        f"under request id {request_id}."
    )
    (logged,) = failures_logged(log_output, request_id)
    assert (logged["kind"], logged["error"]) == ("timeout", "primary did not answer within 0.2 s")


async def test_a_request_a_provider_cannot_express_keeps_parley_s_explanation(
    app: FastAPI,
    client: httpx.AsyncClient,
    api_key: str,
    fake_backup: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def cannot(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ValueError("n>1 is not supported by anthropic")

    monkeypatch.setattr(app.state.ctx.gateway.providers["primary"], "chat", cannot)
    error = assert_error(
        await chat(client, api_key), 400, "invalid_request_error", "upstream_rejected_request"
    )
    assert error["message"] == "primary cannot take this request: n>1 is not supported by anthropic"
    assert fake_backup.requests == []


def test_a_stream_that_broke_off_is_logged_and_worded_for_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cause = UpstreamError(LEAK, status=502, provider="primary")
    with capture_logs(monkeypatch, errors) as buffer:
        structlog.contextvars.bind_contextvars(request_id="req_0123456789abcdefghjkmnpqrs")
        try:
            message = stream_broke_off(StreamInterrupted(cause))
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
    assert message == (
        "The provider broke off the reply (HTTP 5xx); the details are logged under request id "
        "req_0123456789abcdefghjkmnpqrs."
    )
    (logged,) = lines(buffer)
    assert logged["event"] == "gateway.stream_broke_off"
    assert logged["request_id"] == "req_0123456789abcdefghjkmnpqrs"
    assert logged["error"] == LEAK.replace(UPSTREAM_KEY, "sk-proj-***")
    assert (logged["provider"], logged["status"]) == ("primary", 502)

    dropped = UpstreamError("primary broke the stream off: ConnectionResetError", kind="connect")
    assert stream_broke_off(StreamInterrupted(dropped)) == (
        "The provider broke off the reply (connection failure)."
    )
