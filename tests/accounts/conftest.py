"""Fixtures for the accounts tests: extra apps with overridden settings, seen from any IP,
and a quicker clean slate on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from parley.app import create_app
from parley.config import Settings
from tests.support import FakeClock, FakeSleep

TEST_IP = "203.0.113.7"

AppFactory = Callable[..., Awaitable[FastAPI]]
ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def _exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def make_app(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    sleep: FakeSleep,
    redis_cleanup: None,
    _exit_stack: AsyncExitStack,
) -> AppFactory:
    """Start an app whose settings differ from the defaults (e.g. lower login limits).

    It shares the test's database and Redis namespace, which `redis_cleanup` clears.
    """

    async def make(**overrides: Any) -> FastAPI:
        settings = make_settings(**{"run_worker": False, **overrides})
        app = create_app(settings, clock=clock, sleep=sleep, configure_logs=False)
        await _exit_stack.enter_async_context(app.router.lifespan_context(app))
        return app

    return make


@pytest.fixture
def connect(_exit_stack: AsyncExitStack) -> ClientFactory:
    """An httpx client for `app` that presents itself as coming from `ip`."""

    async def open_client(app: FastAPI, ip: str = TEST_IP) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://parley.test")
        return await _exit_stack.enter_async_context(client)

    return open_client


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """No background worker: nothing here runs jobs, and its polling costs every test time."""
    return make_settings(run_worker=False)
