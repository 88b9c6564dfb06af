"""Gateway fixtures: fake upstreams on loopback, a config pointing at them, a live server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from parley.config import Settings
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import ROOMY_PLANS, Account, create_key, register


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fake_backup() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(reply="Backup here, answering instead.")
    await server.start()
    yield server
    await server.stop()


def gateway_config(primary: str, backup: str, **gateway: Any) -> dict[str, Any]:
    return {
        "providers": {
            "primary": {
                "type": "openai",
                "base_url": primary,
                "api_key": "sk-upstream-primary",
                "timeout_s": 2,
            },
            "backup": {
                "type": "openai",
                "base_url": backup,
                "api_key": "sk-upstream-backup",
                "timeout_s": 2,
            },
            "mock": {"type": "mock"},
        },
        "models": {
            "gpt-4o-mini": {
                "tier": "basic",
                "context_window": 4096,
                "max_output_tokens": 1024,
                "price": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": 0.60},
                "aliases": ["mini"],
                "deployments": [
                    {"provider": "primary", "model": "upstream-mini", "max_retries": 1},
                    {"provider": "backup", "model": "backup-mini", "max_retries": 1},
                ],
            },
            "solo": {
                "tier": "basic",
                "deployments": [
                    {"provider": "primary", "model": "upstream-solo", "max_retries": 2}
                ],
            },
            "parley-mock": {
                "tier": "basic",
                "deployments": [{"provider": "mock", "model": "parley-mock"}],
            },
            "embed-small": {
                "kind": "embedding",
                "price": {"input_per_mtok_usd": 0.02},
                "deployments": [{"provider": "primary", "model": "upstream-embed"}],
            },
        },
        "plans": ROOMY_PLANS,
        "gateway": {
            "deadline_s": 10,
            "breaker": {"failure_threshold": 3, "cooldown_s": 30},
            "retry": {"base_delay_s": 0.01, "max_delay_s": 1.0},
            **gateway,
        },
    }


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    """Tests override this to change the `gateway:` section."""
    return {}


@pytest.fixture
def gateway_yaml(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    gateway_overrides: dict[str, Any],
) -> Path:
    path = tmp_path / "parley.yaml"
    path.write_text(
        yaml.safe_dump(gateway_config(fake_openai.url, fake_backup.url, **gateway_overrides))
    )
    return path


@pytest.fixture
def settings(make_settings: Callable[..., Settings], gateway_yaml: Path) -> Settings:
    return make_settings(config=gateway_yaml, usage_flush_s=0.05)


@pytest.fixture
async def account(client: httpx.AsyncClient) -> Account:
    return await register(client)


@pytest.fixture
async def api_key(client: httpx.AsyncClient, account: Account) -> str:
    key = await create_key(client, account, scopes=["inference", "admin"])
    return str(key["key"])


@pytest.fixture
def sdk(app: FastAPI, api_key: str) -> openai.AsyncOpenAI:
    """The official SDK, talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url="http://parley.test/v1",
        http_client=httpx.AsyncClient(transport=transport),
        max_retries=0,
    )


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real socket (for streaming and disconnects)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
def live_sdk(live_url: str, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key, base_url=f"{live_url}/v1", max_retries=0)
