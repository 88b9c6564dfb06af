"""Sign-in activity in the organisation audit log, with the caller's address."""

from __future__ import annotations

from typing import Any

import httpx

from tests.accounts.conftest import TEST_IP
from tests.accounts.helpers import audit_events, login, logout, refresh
from tests.support import PASSWORD, Account, join, register, unique_email


def _about(events: list[dict[str, Any]], account: Account) -> list[dict[str, Any]]:
    return [e for e in events if e["target_id"] == account.user_id]


def _assert_user_event(event: dict[str, Any], account: Account) -> None:
    assert event["object"] == "audit_event"
    assert event["id"].startswith("aud_")
    assert event["actor_type"] == "user"
    assert event["actor_id"] == account.user_id
    assert event["target_type"] == "user"
    assert event["target_id"] == account.user_id
    assert event["ip"] == TEST_IP


async def test_login_is_audited(client: httpx.AsyncClient) -> None:
    account = await register(client)
    assert await audit_events(client, account, account.org_id, "auth.login") == []
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    assert (await login(client, account.email, PASSWORD)).status_code == 200
    events = await audit_events(client, account, account.org_id, "auth.login")
    assert len(events) == 2
    for event in events:
        _assert_user_event(event, account)


async def test_failed_login_is_audited_even_though_the_request_fails(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    assert (await login(client, account.email, "not the right passphrase")).status_code == 401
    events = await audit_events(client, account, account.org_id, "auth.login_failed")
    assert len(events) == 1
    _assert_user_event(events[0], account)
    # The attempted password is nowhere in it.
    assert "not the right passphrase" not in str(events[0])
    assert await audit_events(client, account, account.org_id, "auth.login") == []
    # A failure for an unknown email lands in nobody's org.
    assert (await login(client, unique_email("ghost"), "whatever it was")).status_code == 401
    assert len(await audit_events(client, account, account.org_id, "auth.login_failed")) == 1


async def test_throttled_attempts_are_not_logged_as_failures(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for _ in range(5):
        assert (await login(client, account.email, "not the right passphrase")).status_code == 401
    assert (await login(client, account.email, "not the right passphrase")).status_code == 429
    events = await audit_events(client, account, account.org_id, "auth.login_failed")
    assert len(events) == 5


async def test_logout_is_audited(client: httpx.AsyncClient) -> None:
    account = await register(client)
    assert (await logout(client, account.refresh_token)).status_code == 204
    # A second logout of the same session is not a new event.
    assert (await logout(client, account.refresh_token)).status_code == 204
    events = await audit_events(client, account, account.org_id, "auth.logout")
    assert len(events) == 1
    _assert_user_event(events[0], account)


async def test_password_change_is_audited(client: httpx.AsyncClient) -> None:
    account = await register(client)
    bad = await client.post(
        "/v1/users/me/password",
        json={"current_password": "wrong passphrase!", "new_password": "a new long passphrase"},
        headers=account.headers,
    )
    assert bad.status_code == 401
    assert await audit_events(client, account, account.org_id, "user.password_changed") == []
    ok = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a new long passphrase"},
        headers=account.headers,
    )
    assert ok.status_code == 204, ok.text
    events = await audit_events(client, account, account.org_id, "user.password_changed")
    assert len(events) == 1
    _assert_user_event(events[0], account)
    assert "a new long passphrase" not in str(events[0])


async def test_refresh_token_reuse_is_audited(client: httpx.AsyncClient) -> None:
    account = await register(client)
    assert (await refresh(client, account.refresh_token)).status_code == 200
    assert await audit_events(client, account, account.org_id, "auth.refresh_token_reused") == []
    assert (await refresh(client, account.refresh_token)).status_code == 401
    events = await audit_events(client, account, account.org_id, "auth.refresh_token_reused")
    assert len(events) == 1
    _assert_user_event(events[0], account)


async def test_events_go_to_every_org_of_the_user_and_no_other(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    bystander = await register(client)
    assert (await login(client, member.email, PASSWORD)).status_code == 200
    assert (await login(client, member.email, "not the right passphrase")).status_code == 401
    for action in ("auth.login", "auth.login_failed"):
        # The owner of the shared org sees the member's sign-in...
        shared = _about(await audit_events(client, owner, owner.org_id, action), member)
        assert len(shared) == 1, (action, shared)
        _assert_user_event(shared[0], member)
        # ...so does the member's personal org, and an unrelated org sees nothing.
        personal = await audit_events(client, member, member.org_id, action)
        assert len(personal) == 1, (action, personal)
        assert await audit_events(client, bystander, bystander.org_id, action) == []
