"""Shortcuts shared by the accounts tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Account, bearer


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def logout(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/logout", json={"refresh_token": refresh_token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/v1/users/me", headers=bearer(access_token))


async def audit_events(
    client: httpx.AsyncClient, account: Account, org_id: str, action: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/orgs/{org_id}/audit-log",
        params={"action": action, "limit": 100},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    data: list[dict[str, Any]] = body["data"]
    assert all(e["action"] == action for e in data), data
    return data
