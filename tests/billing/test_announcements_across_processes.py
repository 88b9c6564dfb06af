"""Control-plane announcements reach every process that shares the data, on both stacks:
over Redis, or on SQLite through the database's broadcasts (polled about once a second).

- a plan set with `parley admin set-plan` (another process) reaches a running server, which
  otherwise keeps its cached limits (10 s);
- an API key revoked through one process is refused by another at once, which otherwise
  keeps its cached principal (here 300 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from parley.config import Settings
from tests.support import (
    FakeClock,
    asgi_client,
    assert_error,
    bearer,
    create_key,
    register,
    running,
)
from tests.test_cli import cli_env, parley
from tests.usage.conftest import PREMIUM, chat, write_config

DEADLINE_S = 3.0  # well under the caches' lifetimes, well over the poll interval


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    config = write_config(tmp_path / "plans.yaml", {})  # the seeded plans, premium-mock
    return make_settings(config=config, broadcast_poll_s=0.1, key_cache_ttl_s=300)


def cli_env_for(settings: Settings) -> dict[str, str]:
    """The CLI's environment: the same database (and Redis namespace) as the server."""
    assert settings.secret_key is not None
    env = cli_env(
        settings.data_dir,
        PARLEY_DATABASE_URL=settings.resolved_database_url,
        PARLEY_SECRET_KEY=settings.secret_key.get_secret_value(),
        PARLEY_CONFIG=str(settings.config),
        PARLEY_REDIS_NAMESPACE=settings.redis_namespace,
    )
    if settings.redis_url:
        env["PARLEY_REDIS_URL"] = settings.redis_url
    return env


async def eventually(
    call: Callable[[], Awaitable[httpx.Response]], done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """`call` until `done` says so, for up to DEADLINE_S; the last response."""
    started = time.monotonic()
    response = await call()
    while not done(response) and time.monotonic() - started < DEADLINE_S:
        await asyncio.sleep(0.05)
        response = await call()
    return response


@pytest.mark.slow
async def test_a_plan_set_from_the_command_line_reaches_the_running_server(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await register(client)
    key = str((await create_key(client, account))["key"])
    # On the free plan: refused, and the server now holds the free plan's limits.
    refused = await chat(client, key, PREMIUM)
    assert_error(refused, 403, "permission_error", "model_not_allowed")

    done = await asyncio.to_thread(
        parley, "admin", "set-plan", account.org_id, "starter", env=cli_env_for(settings)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{account.org_id} is on starter"), done.stdout

    answered = await eventually(lambda: chat(client, key, PREMIUM), lambda r: r.status_code == 200)
    assert answered.status_code == 200, answered.text


async def test_a_key_revoked_through_one_process_is_refused_by_another(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    account = await register(client)
    key = await create_key(client, account)
    async with running(settings, clock) as other, asgi_client(other) as elsewhere:
        models = await elsewhere.get("/v1/models", headers=bearer(key["key"]))
        assert models.status_code == 200, models.text  # and cached there

        revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=account.headers)
        assert revoked.status_code == 200, revoked.text

        response = await eventually(
            lambda: elsewhere.get("/v1/models", headers=bearer(key["key"])),
            lambda r: r.status_code == 401,
        )
        assert_error(response, 401, "authentication_error", "api_key_revoked")


async def test_each_announcement_arrives_once_from_this_process_or_another(
    app: FastAPI, settings: Settings, clock: FakeClock
) -> None:
    here = app.state.ctx.backends.control
    async with running(settings, clock) as other, here.subscribe("test.channel") as messages:
        there = other.state.ctx.backends.control
        await here.publish("test.channel", b"from here")
        await there.publish("test.channel", b"from there")
        await there.publish("other.channel", b"not for us")
        first = await asyncio.wait_for(anext(messages), DEADLINE_S)
        second = await asyncio.wait_for(anext(messages), DEADLINE_S)
        assert [first, second] == [b"from here", b"from there"]
        # No copy of either follows (three polls' time).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(messages), 0.3)
