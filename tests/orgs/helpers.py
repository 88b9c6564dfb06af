"""Small helpers the organisation tests share."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Account


async def audit_events(
    client: httpx.AsyncClient, who: Account, org_id: str, action: str
) -> list[dict[str, Any]]:
    """The organisation's audit events of one action, newest first."""
    response = await client.get(
        f"/v1/orgs/{org_id}/audit-log", params={"action": action}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def member_roles(client: httpx.AsyncClient, who: Account, org_id: str) -> dict[str, str]:
    """user_id -> role for every member of the organisation."""
    response = await client.get(f"/v1/orgs/{org_id}/members", headers=who.headers)
    assert response.status_code == 200, response.text
    return {m["user_id"]: m["role"] for m in response.json()["data"]}


async def log_in_again(client: httpx.AsyncClient, *accounts: Account) -> None:
    """Fresh access tokens, after the clock has moved past their lifetime."""
    for account in accounts:
        response = await client.post(
            "/v1/auth/login", json={"email": account.email, "password": account.password}
        )
        assert response.status_code == 200, response.text
        account.access_token = response.json()["access_token"]
        account.refresh_token = response.json()["refresh_token"]
