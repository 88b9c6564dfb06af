"""Usage and quota fixtures: the real plans (not the roomy test ones) and models made for them.

The config written here keeps the seeded plans as they are unless a test overrides
`plans_override` (parametrize it, or override the fixture). Its models all answer offline:

- parley-mock   basic tier, free of charge
- priced-mock   basic tier, 1,000 USD per million tokens (1,000 micro-USD a token)
- premium-mock  premium tier (paid plans only)
- broken        its only deployment is an openai-compatible server where nothing listens
- slow-mock     parley-mock answering after a second (a call still running)
- embed-mock    an embedding model (calls that are not messages)

The recorder flushes only when a test says so (or the app stops), so what a test reads from
the ledger is exactly what it wrote.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import select

from parley.billing.models import QuotaNotice
from parley.config import Settings
from parley.usage.models import UsageEvent
from tests.support import Account, bearer, create_key, register

MOCK = "parley-mock"
PRICED = "priced-mock"
PREMIUM = "premium-mock"
BROKEN = "broken"
SLOW = "slow-mock"
EMBED = "embed-mock"
MICROS_PER_TOKEN = 1_000  # priced-mock: 1,000 USD per million tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def usage_config(plans: dict[str, dict[str, Any]], dead_url: str) -> dict[str, Any]:
    mock = [{"provider": "mock", "model": "parley-mock"}]
    return {
        "providers": {
            "mock": {"type": "mock"},
            "dead": {"type": "openai", "base_url": dead_url, "api_key": "sk-dead", "timeout_s": 1},
            "slow": {"type": "mock", "options": {"delay_s": 1.0}},
        },
        "models": {
            MOCK: {"tier": "basic", "deployments": mock},
            PRICED: {
                "tier": "basic",
                "price": {"input_per_mtok_usd": 1000, "output_per_mtok_usd": 1000},
                "deployments": mock,
            },
            PREMIUM: {"tier": "premium", "deployments": mock},
            BROKEN: {
                "tier": "basic",
                "deployments": [{"provider": "dead", "model": "gone", "max_retries": 0}],
            },
            SLOW: {"tier": "basic", "deployments": [{"provider": "slow", "model": "parley-mock"}]},
            EMBED: {"kind": "embedding", "deployments": mock},
        },
        "plans": plans,
        "gateway": {"deadline_s": 5, "retry": {"base_delay_s": 0.01, "max_delay_s": 0.02}},
    }


def write_config(path: Path, plans: dict[str, dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(usage_config(plans, f"http://127.0.0.1:{free_port()}/v1")))
    return path


@pytest.fixture
def plans_override() -> dict[str, dict[str, Any]]:
    """The config file's `plans:` section; empty keeps the seeded plans."""
    return {}


@pytest.fixture
def usage_yaml(tmp_path: Path, plans_override: dict[str, dict[str, Any]]) -> Path:
    return write_config(tmp_path / "usage.yaml", plans_override)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], usage_yaml: Path) -> Settings:
    return make_settings(config=usage_yaml, usage_flush_s=3600)


@pytest.fixture
async def account(client: httpx.AsyncClient) -> Account:
    return await register(client)


@pytest.fixture
async def secret(client: httpx.AsyncClient, account: Account) -> str:
    """An inference key of the account's organisation."""
    return str((await create_key(client, account))["key"])


async def chat(
    client: httpx.AsyncClient,
    token: str,
    model: str = MOCK,
    *,
    org_id: str | None = None,
    content: str = "Hi",
    **body: Any,
) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}], **body},
        headers=bearer(token, org_id),
    )


async def settle(app: FastAPI) -> None:
    """Wait for what runs off the request path: settlements and quota notices."""
    await asyncio.sleep(0)
    await app.state.ctx.quotas.drain()


async def set_plan(app: FastAPI, org_id: str, plan: str, **custom: int | None) -> None:
    ctx = app.state.ctx
    async with ctx.db.session() as session:
        await ctx.billing.set_plan(session, org_id, plan, custom=custom or None)


async def usage_events(app: FastAPI, org_id: str) -> list[UsageEvent]:
    ctx = app.state.ctx
    await ctx.usage_recorder.flush()
    async with ctx.db.session() as session:
        rows = await session.scalars(
            select(UsageEvent).where(UsageEvent.org_id == org_id).order_by(UsageEvent.created_at)
        )
        return list(rows)


async def notices(app: FastAPI, org_id: str) -> list[QuotaNotice]:
    ctx = app.state.ctx
    async with ctx.db.session() as session:
        rows = await session.scalars(
            select(QuotaNotice)
            .where(QuotaNotice.org_id == org_id)
            .order_by(QuotaNotice.quota, QuotaNotice.threshold)
        )
        return list(rows)


async def summary(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.get("/v1/usage/summary", headers=account.in_org(account.org_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
