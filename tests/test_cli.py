"""The `parley` command line, run as real subprocesses: help, admin bootstrap, migrate, and
`parley serve` answering over a real socket with the bootstrapped key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from parley.bootstrap import bootstrap as bootstrap_in_process
from parley.context import AppContext
from parley.db.migrate import head_revisions
from parley.errors import InvalidRequest
from tests import pg
from tests.conftest import pg_admin
from tests.support import bearer, register

PASSWORD = "correct horse battery staple"
CLI_TIMEOUT_S = 120


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: this interpreter's, minus PARLEY_*, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(
        PARLEY_DATA_DIR=str(data_dir),
        PARLEY_ARGON2_TIME_COST="1",
        PARLEY_ARGON2_MEMORY_KIB="1024",
        PARLEY_ARGON2_PARALLELISM="1",
        PARLEY_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def parley(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def bootstrap(env: dict[str, str], email: str, org: str = "Acme") -> dict[str, Any]:
    done = parley(
        "admin", "bootstrap", "--email", email, "--password", PASSWORD, "--org", org, "--json",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)  # stdout is the JSON and nothing else
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-data")


@pytest.fixture(scope="module")
def bootstrapped(data_dir: Path) -> dict[str, Any]:
    """One bootstrap into the module's SQLite data dir (the embedded default)."""
    return bootstrap(cli_env(data_dir), "ops@example.com")


@pytest.mark.slow
def test_help_lists_the_commands() -> None:
    done = parley("--help", env=cli_env(Path("/nonexistent")))
    assert done.returncode == 0, done.stderr
    for command in ("serve", "migrate", "worker", "admin"):
        assert command in done.stdout
    assert "multi-tenant" in done.stdout


@pytest.mark.slow
def test_bootstrap_creates_user_org_and_admin_key(
    bootstrapped: dict[str, Any], data_dir: Path
) -> None:
    assert bootstrapped["user_id"].startswith("usr_")
    assert bootstrapped["org_id"].startswith("org_")
    assert bootstrapped["api_key_id"].startswith("key_")
    assert bootstrapped["api_key"].startswith("sk-parley-")
    assert bootstrapped["email"] == "ops@example.com"
    assert bootstrapped["org_name"] == "Acme"
    assert bootstrapped["user_created"] is True
    assert bootstrapped["org_created"] is True
    assert (data_dir / "parley.db").exists()  # SQLite under PARLEY_DATA_DIR by default


@pytest.mark.slow
def test_bootstrap_again_reuses_user_and_org(bootstrapped: dict[str, Any], data_dir: Path) -> None:
    again = bootstrap(cli_env(data_dir), "OPS@example.com ")  # the same address
    assert again["user_id"] == bootstrapped["user_id"]
    assert again["org_id"] == bootstrapped["org_id"]
    assert again["user_created"] is False
    assert again["org_created"] is False
    assert again["api_key"].startswith("sk-parley-")
    assert again["api_key"] != bootstrapped["api_key"]
    assert again["api_key_id"] != bootstrapped["api_key_id"]


@pytest.mark.slow
def test_bootstrap_refuses_a_weak_password(data_dir: Path) -> None:
    done = parley(
        "admin", "bootstrap", "--email", "weak@example.com", "--password", "short",
        "--org", "Acme", "--json", env=cli_env(data_dir),
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last == "error: Password must be at least 10 characters long.", done.stderr
    assert "Traceback" not in done.stderr


# --- parley serve -------------------------------------------------------------------------------


@pytest.fixture
def server(data_dir: Path, bootstrapped: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """`parley serve` on a free port over the bootstrapped data dir; yields its base URL."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(port)],
            env=cli_env(data_dir, PARLEY_LOG_LEVEL="INFO"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, "server exited:\n" + log_path.read_text()
                try:
                    if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server never became healthy"
                time.sleep(0.1)
            yield base_url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    code = process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise
                # Uvicorn shuts down gracefully, then re-raises the signal it caught.
                assert code in (0, -signal.SIGTERM), log_path.read_text()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert "parley.stopped" in output, output  # the lifespan ran to its end
    assert bootstrapped["api_key"] not in output  # no secret is ever logged


@pytest.mark.slow
def test_serve_answers_with_the_bootstrapped_key(server: str, bootstrapped: dict[str, Any]) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        headers = {"Authorization": f"Bearer {bootstrapped['api_key']}"}
        orgs = client.get("/v1/orgs", headers=headers)
        assert orgs.status_code == 200, orgs.text
        assert [o["id"] for o in orgs.json()["data"]] == [bootstrapped["org_id"]]
        assert orgs.json()["data"][0]["name"] == "Acme"
        assert orgs.headers.get("x-request-id")

        # The bootstrap key carries every scope, so it can administer keys too.
        keys = client.get("/v1/api-keys", headers=headers)
        assert keys.status_code == 200, keys.text
        assert bootstrapped["api_key_id"] in {k["id"] for k in keys.json()["data"]}

        refused = client.get("/v1/orgs", headers={"Authorization": "Bearer sk-parley-nope"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"

        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ok"
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["migrations"] == "ok"


# --- parley migrate -----------------------------------------------------------------------------


async def _alembic_versions(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version_num FROM alembic_version")
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename IN ('api_keys', 'jobs', 'users', 'organizations')"
        )
    finally:
        await conn.close()
    assert len(tables) == 4, tables
    return {row["version_num"] for row in rows}


@pytest.fixture
def fresh_pg_database() -> Iterator[str]:
    """An empty PostgreSQL database of our own; yields its plain (asyncpg) DSN."""
    name = f"parley_cli_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg.server().dsn(name)
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.slow
def test_migrate_brings_a_fresh_postgres_database_to_head(
    fresh_pg_database: str, tmp_path: Path
) -> None:
    url = fresh_pg_database.replace("postgresql://", "postgresql+asyncpg://")
    done = parley("migrate", env=cli_env(tmp_path, PARLEY_DATABASE_URL=url))
    assert done.returncode == 0, done.stderr
    assert "newest revision" in done.stdout
    assert asyncio.run(_alembic_versions(fresh_pg_database)) == head_revisions(url)
    assert not (tmp_path / "parley.db").exists()  # PostgreSQL, not the SQLite default


# --- the bootstrap itself, in process (both stacks) ---------------------------------------------


async def test_bootstrap_in_process_reuses_by_trimmed_names(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ctx: AppContext = app.state.ctx
    first = await bootstrap_in_process(
        ctx, email=" Boss@Example.com", password=PASSWORD, org_name="  Acme Ltd "
    )
    assert first.email == "boss@example.com"
    assert first.org_name == "Acme Ltd"
    again = await bootstrap_in_process(
        ctx, email="boss@example.com", password=PASSWORD, org_name="Acme Ltd"
    )
    third = await bootstrap_in_process(
        ctx, email="BOSS@example.com", password=PASSWORD, org_name=" Acme Ltd"
    )
    assert {again.user_id, third.user_id} == {first.user_id}
    assert {again.org_id, third.org_id} == {first.org_id}
    assert (again.org_created, third.org_created) == (False, False)
    assert len({first.api_key, again.api_key, third.api_key}) == 3

    # The user can log in with the password, has the org as default, and owns it.
    login = await client.post(
        "/v1/auth/login", json={"email": "boss@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    me = await client.get("/v1/users/me", headers=bearer(login.json()["access_token"]))
    assert me.json()["default_org_id"] == first.org_id
    orgs = await client.get("/v1/orgs", headers=bearer(login.json()["access_token"]))
    assert [(o["id"], o["role"]) for o in orgs.json()["data"]] == [(first.org_id, "owner")]

    # Every key works, with every scope, in that org only.
    for key in (first.api_key, again.api_key, third.api_key):
        keys = await client.get("/v1/api-keys", headers=bearer(key))
        assert keys.status_code == 200, keys.text
        scopes = {tuple(k["scopes"]) for k in keys.json()["data"]}
        assert scopes == {("admin", "conversations", "inference", "knowledge")}
        assert {k["org_id"] for k in keys.json()["data"]} == {first.org_id}


async def test_bootstrap_in_process_adds_an_org_for_an_existing_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ctx: AppContext = app.state.ctx
    account = await register(client)
    result = await bootstrap_in_process(
        ctx, email=account.email, password="ignored for an existing user", org_name="Ops"
    )
    assert result.user_id == account.user_id
    assert result.user_created is False
    assert result.org_created is True
    assert result.org_id != account.org_id  # a new org named Ops, not the personal one
    orgs = await client.get("/v1/orgs", headers=bearer(result.api_key))
    assert [o["id"] for o in orgs.json()["data"]] == [result.org_id]
    # The user's default org is unchanged.
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.json()["default_org_id"] == account.org_id


async def test_bootstrap_in_process_rejects_bad_input(app: FastAPI) -> None:
    ctx: AppContext = app.state.ctx
    cases: list[tuple[dict[str, str], str]] = [
        ({"email": "not-an-email", "password": PASSWORD, "org_name": "Acme"}, "email"),
        ({"email": "weak@example.com", "password": "short", "org_name": "Acme"}, "password"),
        ({"email": "noorg@example.com", "password": PASSWORD, "org_name": "   "}, "name"),
    ]
    for kwargs, param in cases:
        with pytest.raises(InvalidRequest) as caught:
            await bootstrap_in_process(ctx, **kwargs)
        assert caught.value.param == param, kwargs
    # Nothing was half-made: the good email can still be bootstrapped from scratch.
    made = await bootstrap_in_process(
        ctx, email="noorg@example.com", password=PASSWORD, org_name="Acme"
    )
    assert made.user_created is True
