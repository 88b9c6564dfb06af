"""`parley serve` stopped by SIGTERM in the middle of 200 requests, some of them streams that
would run for minutes: shutdown ends within its grace period, and every request that got a
response has exactly one usage event (after a restart, which writes anything spilled)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import select

from parley.bootstrap import bootstrap
from parley.config import Settings
from parley.context import AppContext
from parley.db.engine import Database
from parley.usage.models import UsageEvent
from tests.support import PASSWORD, ROOMY_PLANS
from tests.usage.conftest import free_port

GRACE_S = 2
QUICK_WORDS = " ".join(f"w{i}" for i in range(8))  # a reply of 10 words, 50 ms each
ENDLESS_WORDS = " ".join(f"w{i}" for i in range(400))  # a reply of 402 words, 500 ms each


def shutdown_config() -> dict[str, Any]:
    return {
        "providers": {
            "quick": {"type": "mock", "options": {"delay_s": 0.05}},
            "endless": {"type": "mock", "options": {"delay_s": 0.5}},
        },
        "models": {
            "quick": {"tier": "basic", "deployments": [{"provider": "quick", "model": "q"}]},
            "endless": {"tier": "basic", "deployments": [{"provider": "endless", "model": "e"}]},
        },
        "plans": ROOMY_PLANS,
    }


@dataclass
class Outcome:
    request_id: str | None = None  # None: no response at all
    status: int = 0
    content: str = ""


class Server:
    """`parley serve` as a real process, started and stopped by signal."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        self.env.update(
            PARLEY_DATABASE_URL=settings.resolved_database_url,
            PARLEY_DATA_DIR=str(settings.data_dir),
            PARLEY_CONFIG=str(settings.config),
            PARLEY_SECRET_KEY=settings.signing_key(),
            PARLEY_SHUTDOWN_GRACE_S=str(GRACE_S),
            PARLEY_LOG_LEVEL="INFO",
            PARLEY_REDIS_NAMESPACE=settings.redis_namespace,
        )
        if settings.redis_url:
            self.env["PARLEY_REDIS_URL"] = settings.redis_url
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "parley", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=1) as probe:
            for _ in range(600):
                assert self.process.poll() is None, self.log_path.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError("the server never became healthy")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def exited(self, within_s: float) -> int:
        assert self.process is not None
        for _ in range(int(within_s * 10)):
            code = self.process.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"still running {within_s} s after SIGTERM")


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[tuple[Server, str]]:
    config = tmp_path / "parley.yaml"
    config.write_text(yaml.safe_dump(shutdown_config()))
    settings = make_settings(config=config, auto_migrate=True)
    ctx = AppContext.build(settings)
    try:
        made = await bootstrap(ctx, email="ops@example.com", password=PASSWORD, org_name="Acme")
    finally:
        await ctx.db.dispose()
        await ctx.backends.close()
    running = Server(settings, tmp_path / "serve.log")
    await running.start()
    try:
        yield running, made.api_key
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.kill()
            running.process.wait()


async def call(http: httpx.AsyncClient, key: str, model: str, words: str, stream: bool) -> Outcome:
    outcome = Outcome()
    body = {"model": model, "messages": [{"role": "user", "content": words}], "stream": stream}
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            outcome.request_id = r.headers.get("x-request-id")
            outcome.status = r.status_code
            async for line in r.aiter_lines():
                if stream and line.startswith("data: {"):
                    for choice in orjson.loads(line[6:])["choices"]:
                        outcome.content += choice["delta"].get("content") or ""
    except httpx.TransportError:
        pass  # cut by the shutdown, or refused after it began
    return outcome


@pytest.mark.slow
async def test_sigterm_amid_200_requests_loses_no_usage(
    server: tuple[Server, str], database_url: str
) -> None:
    running, key = server
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=running.url, timeout=30, limits=limits) as http:
        calls = (
            [call(http, key, "quick", QUICK_WORDS, stream=False) for _ in range(100)]
            + [call(http, key, "quick", QUICK_WORDS, stream=True) for _ in range(70)]
            + [call(http, key, "endless", ENDLESS_WORDS, stream=True) for _ in range(30)]
        )
        pending = asyncio.gather(*calls)
        await asyncio.sleep(1.5)  # all accepted, many answered, the endless ones streaming
        running.terminate()
        outcomes = await pending
    code = await running.exited(within_s=GRACE_S + 15)
    assert code in (0, -signal.SIGTERM), running.log_path.read_text()
    assert "parley.stopped" in running.log_path.read_text()

    await running.start()  # a spill, if any, is written now
    running.terminate()
    await running.exited(within_s=GRACE_S + 15)

    answered = {o.request_id: o for o in outcomes if o.request_id is not None}
    assert len(answered) > 150, "most requests were under way when the signal came"
    assert {o.status for o in answered.values()} == {200}, running.log_path.read_text()
    cut = [o for o in answered.values() if o.content.startswith("Mock reply: w0")]
    assert any(len(o.content) < len("Mock reply: " + ENDLESS_WORDS) for o in cut)
    db = Database(database_url)
    try:
        async with db.session() as session:
            events = {
                e.id: e
                for e in await session.scalars(
                    select(UsageEvent).where(UsageEvent.id.in_(list(answered)))
                )
            }
    finally:
        await db.dispose()
    missing = set(answered) - set(events)
    assert not missing, f"{len(missing)} answered requests have no usage event"
    for request_id, outcome in answered.items():
        if outcome.content:  # content reached the client: one message, however it ended
            assert events[request_id].messages == 1, events[request_id].status
