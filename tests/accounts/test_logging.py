"""No password or token reaches the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog

from parley.http import middleware
from parley.logging import _mask, configure_logging
from tests.accounts.helpers import login, logout, me, refresh
from tests.support import PASSWORD, register

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The production processor chain, writing JSON lines to a buffer instead of stderr."""
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True)
    # No caching: a logger bound during this test must not keep the buffer afterwards.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
        cache_logger_on_first_use=False,
    )
    # The access log may have been bound (and cached) under an earlier configuration.
    monkeypatch.setattr(middleware, "log", structlog.get_logger("parley.access"))
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_mask_hides_secret_fields_and_secret_looking_values() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJlLXZhbHVl"
    event = _mask(
        None,
        "info",
        {
            "event": "user.login token rotation",
            "password": "hunter2 hunter2",
            "new_password": "something",
            "refresh_token": "rt_abcdefghijklmnop",
            "Authorization": "Bearer x",
            "api_key": "sk-parley-abcdefghijkl",
            "note": "sent rt_abcdefghijklmnop and sk-parley-ABCDEFGH12345678 with " + jwt_like,
            "path": "/v1/auth/login",
            "status": 401,
        },
    )
    for key in ("password", "new_password", "refresh_token", "Authorization", "api_key"):
        assert event[key] == "***", key
    assert event["note"] == "sent rt_*** and sk-parley-*** with ***"
    # What is not secret is kept as it was, the event name included.
    assert event["event"] == "user.login token rotation"
    assert event["path"] == "/v1/auth/login"
    assert event["status"] == 401


async def test_a_full_session_logs_no_secret(
    client: httpx.AsyncClient, log_output: io.StringIO
) -> None:
    account = await register(client)
    logged_in = (await login(client, account.email, PASSWORD)).json()
    assert (await login(client, account.email, "the wrong passphrase")).status_code == 401
    rotated = (await refresh(client, logged_in["refresh_token"])).json()
    assert (await me(client, rotated["access_token"])).status_code == 200
    changed = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )
    assert changed.status_code == 204
    assert (await logout(client, rotated["refresh_token"])).status_code == 204
    # Code that does pass a secret to a logger gets it masked on the way out.
    structlog.get_logger("parley.test").warning(
        "careless", password=PASSWORD, detail=f"token was {rotated['refresh_token']}"
    )

    output = log_output.getvalue()
    lines = _lines(log_output)
    requests = [(e["method"], e["path"], e["status"]) for e in lines if e["event"] == "request"]
    assert ("POST", "/v1/auth/login", 401) in requests
    assert ("POST", "/v1/users/me/password", 204) in requests
    assert len(requests) == 7
    careless = next(e for e in lines if e["event"] == "careless")
    assert careless["password"] == "***"
    assert careless["detail"] == "token was rt_***"
    secrets = [
        PASSWORD,
        NEW_PASSWORD,
        "the wrong passphrase",
        account.access_token,
        account.refresh_token,
        logged_in["access_token"],
        logged_in["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
    ]
    for secret in secrets:
        assert secret not in output
        # Not even a recognisable piece of it.
        assert secret[-16:] not in output
