from __future__ import annotations

import httpx

from tests.support import register


async def test_register_and_read_profile(client: httpx.AsyncClient) -> None:
    account = await register(client, name="Ann")
    response = await client.get("/v1/users/me", headers=account.headers)
    assert response.status_code == 200
    assert response.json()["email"] == account.email
    assert response.json()["default_org_id"] == account.org_id
