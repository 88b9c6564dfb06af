"""What the upstream HTTP client's limits and retries mean for a caller of the gateway:
large answers arrive in one attempt, an answer over the provider's cap is a clear error
that is neither retried nor failed over nor held against the breaker, and a stale pooled
connection costs no attempt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from tests.gateway.conftest import gateway_config
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.gateway.http1.servers import Peer, RawServer, answering
from tests.gateway.http1.tls import TlsFiles, make_tls_files
from tests.support import assert_error, operator

CAP = 1024 * 1024
MESSAGES = [{"role": "user", "content": "Hi"}]


def completion(content: str) -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "created": 1,
            "model": "raw",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    ).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@pytest.fixture
async def resetting_upstream() -> AsyncIterator[RawServer]:
    """Answers on its first connection, then resets that connection at the next request
    without reading it, as a server does that dropped the idle connection meanwhile; a new
    connection is answered."""

    async def handle(peer: Peer) -> None:
        first = peer.server.connections == 1
        while await peer.request() is not None:
            if first and len(peer.server.requests) > 1:
                peer.reset()
                return
            await peer.send(completion(f"answer {len(peer.server.requests)}"))

    async with RawServer(handle) as server:
        yield server


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def tls_upstream(tls_files: TlsFiles) -> AsyncIterator[RawServer]:
    """An HTTPS upstream whose certificate only the private CA vouches for."""
    answer = completion("over TLS")
    async with RawServer(answering(lambda _r: answer), tls=tls_files.server_context()) as server:
        yield server


@pytest.fixture
def gateway_yaml(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    resetting_upstream: RawServer,
    tls_upstream: RawServer,
    tls_files: TlsFiles,
) -> Path:
    config = gateway_config(fake_openai.url, fake_backup.url)
    config["providers"]["primary"]["limits"] = {"max_body": "1MiB"}
    providers = {
        "raw": {"base_url": resetting_upstream.url("/v1")},
        "private-ca": {
            "base_url": tls_upstream.url("/v1"),
            "tls": {"ca_bundle": str(tls_files.ca)},
            "connect_timeout_s": 1,
        },
        "system-ca": {"base_url": tls_upstream.url("/v1")},
    }
    for name, provider in providers.items():
        config["providers"][name] = {
            "type": "openai",
            "api_key": "sk-x",
            "timeout_s": 2,
            **provider,
        }
        config["models"][f"{name}-model"] = {
            "deployments": [{"provider": name, "model": "m", "max_retries": 0}]
        }
    path = tmp_path / "parley.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def embed(client: httpx.AsyncClient, api_key: str, inputs: int, dims: int) -> httpx.Response:
    return await client.post(
        "/v1/embeddings",
        json={"model": "embed-small", "input": ["some text"] * inputs, "dimensions": dims},
        headers=auth(api_key),
    )


async def health(client: httpx.AsyncClient, app: FastAPI, deployment: str) -> dict[str, Any]:
    """A deployment's row of the providers' health, as a platform operator reads it."""
    ops = await operator(client, app)
    response = await client.get("/v1/providers/health", headers=ops.headers)
    assert response.status_code == 200, response.text
    rows = [r for r in response.json()["data"] if r["deployment"] == deployment]
    return dict(rows[0])


async def test_a_large_embedding_batch_arrives_in_one_attempt(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI
) -> None:
    response = await embed(client, api_key, inputs=500, dims=128)
    assert response.status_code == 200, response.text
    assert len(response.content) > 512 * 1024  # well past where reading used to stall
    assert len(response.json()["data"]) == 500
    assert response.headers["x-parley-attempts"] == "1"
    assert len(fake_openai.requests) == 1


async def test_an_answer_over_the_cap_is_a_clear_error_and_not_retried(
    client: httpx.AsyncClient,
    app: FastAPI,
    api_key: str,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
) -> None:
    response = await embed(client, api_key, inputs=1000, dims=128)
    error = assert_error(response, 400, "invalid_request_error", "upstream_rejected_request")
    assert "too large" in error["message"]
    assert "1 MiB limit" in error["message"]
    assert len(fake_openai.requests) == 1

    # A chat whose answer is over the cap: no retry, and no failover to the backup (which
    # would answer as largely).
    fake_openai.respond = lambda _body: "word " * (CAP // 5 + 1)
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers=auth(api_key),
    )
    assert_error(response, 400, "invalid_request_error", "upstream_rejected_request")
    assert len(fake_openai.requests) == 2
    assert fake_backup.requests == []
    # The deployment is not held responsible: its breaker saw no failure.
    row = await health(client, app, "primary/upstream-mini")
    assert (row["state"], row["consecutive_failures"]) == ("closed", 0)


async def test_a_stale_pooled_connection_costs_no_attempt(
    client: httpx.AsyncClient, app: FastAPI, api_key: str, resetting_upstream: RawServer
) -> None:
    # The second request is dropped unread on the first connection and answered on a new
    # one: the server reads it as its third.
    for expected in ("answer 1", "answer 3"):
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "raw-model", "messages": MESSAGES},
            headers=auth(api_key),
        )
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == expected
        assert response.headers["x-parley-attempts"] == "1"
    assert resetting_upstream.connections == 2
    row = await health(client, app, "raw/m")
    assert (row["state"], row["consecutive_failures"], row["recent_error_rate"]) == ("closed", 0, 0)


async def test_a_provider_can_trust_a_private_ca(
    client: httpx.AsyncClient, api_key: str, tls_upstream: RawServer
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "private-ca-model", "messages": MESSAGES},
        headers=auth(api_key),
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "over TLS"
    # Without the CA bundle, the same server is refused: the client reads the kind of failure
    # and where the details are logged (the certificate error goes to the log).
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "system-ca-model", "messages": MESSAGES},
        headers=auth(api_key),
    )
    error = assert_error(response, 502, "api_error", "upstream_error")
    assert "(connection failure)" in error["message"]
    assert response.headers["x-request-id"] in error["message"]
