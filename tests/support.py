"""Plain helpers the tests share: a movable clock, sign-up shortcuts and header builders."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from fastapi import FastAPI

if TYPE_CHECKING:
    from parley.config import Settings

PASSWORD = "correct horse battery staple"

# Tests run on a roomy free plan so that setting up members and making many calls is not
# limited; the tests of plans, seats and quotas set the real limits explicitly.
ROOMY_PLANS: dict[str, dict[str, Any]] = {
    "free": {"seats": 1000, "rpm": 1_000_000, "tpm": 1_000_000_000, "messages": 1_000_000}
}
_counter = itertools.count()


class FakeClock:
    """An injectable clock that starts at real time and only moves when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeSleep:
    """An injectable sleep that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def bearer(token: str, org_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if org_id:
        headers["Parley-Organization"] = org_id
    return headers


def unique_email(tag: str = "user") -> str:
    return f"{tag}{next(_counter)}-{datetime.now(UTC).timestamp():.0f}@example.com"


@dataclass
class Account:
    email: str
    password: str
    access_token: str
    refresh_token: str
    user_id: str
    org_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    def in_org(self, org_id: str) -> dict[str, str]:
        return bearer(self.access_token, org_id)


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD, name: str = ""
) -> Account:
    email = email or unique_email()
    response = await client.post(
        "/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        email=email,
        password=password,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        user_id=body["user"]["id"],
        org_id=body["user"]["default_org_id"],
    )


async def operator(client: httpx.AsyncClient, app: FastAPI) -> Account:
    """A new account made a platform operator, as `parley admin grant-operator` does."""
    from sqlalchemy import update

    from parley.accounts.models import User

    account = await register(client)
    async with app.state.ctx.db.session() as session:
        await session.execute(
            update(User).where(User.id == account.user_id).values(is_platform_admin=True)
        )
    return account


async def create_key(
    client: httpx.AsyncClient,
    account: Account,
    scopes: list[str] | None = None,
    org_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "test key", "scopes": scopes or ["inference"], **extra},
        headers=account.in_org(org_id or account.org_id),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def join(
    client: httpx.AsyncClient, owner: Account, org_id: str, role: str, member: Account | None = None
) -> Account:
    """Invite someone (a new account unless given) with `role` and have them accept."""
    member = member or await register(client)
    invite = await client.post(
        f"/v1/orgs/{org_id}/invitations",
        json={"email": member.email, "role": role},
        headers=owner.headers,
    )
    assert invite.status_code == 201, invite.text
    accepted = await client.post(
        "/v1/invitations/accept", json={"token": invite.json()["token"]}, headers=member.headers
    )
    assert accepted.status_code == 200, accepted.text
    return member


def assert_error(
    response: httpx.Response, status: int, type_: str, code: str | None = None
) -> dict[str, Any]:
    """The DESIGN.md envelope, with the expected status, type and (optionally) code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "code", "message", "param"}, error
    assert error["type"] == type_, error
    if code is not None:
        assert error["code"] == code, error
    assert error["message"], error
    assert response.headers.get("x-request-id"), "every response carries x-request-id"
    return error


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    from parley.app import create_app

    """Another app (another process, as far as it knows) over the same database and Redis."""
    app = create_app(settings, clock=clock, configure_logs=False)
    async with app.router.lifespan_context(app):
        yield app


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parley.test")


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real socket (its lifespan is run by the caller)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
