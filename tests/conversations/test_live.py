"""The conversation WebSocket: every client sees every reply stream live, also across two
Parley processes sharing Redis; reconnecting clients resume without gaps; cancel works from
any client; bad credentials and bad commands are refused clearly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.config import Settings
from parley.conversations.socket import ConversationSocket
from tests.conversations.test_conversations import create, say
from tests.support import (
    FakeClock,
    assert_error,
    bearer,
    create_key,
    join,
    register,
    running,
    serving,
)

TIMEOUT_S = 10


def ws_address(base: str, conv_id: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base.replace('http', 'ws', 1)}/v1/conversations/{conv_id}/ws?{query}"


async def ticket(client: httpx.AsyncClient, conv_id: str, token: str, org: str = "") -> str:
    """A one-time ticket for the socket, asked for as a browser does."""
    response = await client.post(
        f"/v1/conversations/{conv_id}/ws-ticket", headers=bearer(token, org or None)
    )
    assert response.status_code == 201, response.text
    value: str = response.json()["ticket"]
    return value


async def ws_url(
    client: httpx.AsyncClient, base: str, conv_id: str, token: str, org: str = "", **params: str
) -> str:
    """The socket's address with a fresh ticket for the holder of `token`."""
    return ws_address(base, conv_id, ticket=await ticket(client, conv_id, token, org), **params)


async def receive(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
    return event


async def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Every event up to and including the first of type `kind`."""
    seen = []
    while True:
        event = await receive(ws)
        seen.append(event)
        if event["type"] == kind:
            return seen


@contextlib.asynccontextmanager
async def socket(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(url, open_timeout=TIMEOUT_S) as ws:
        ready = await receive(ws)
        assert ready["type"] == "ready", ready
        yield ws


def reply_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "message.delta")


@pytest.fixture
async def second_app(settings: Settings, clock: FakeClock, stack: str) -> AsyncIterator[FastAPI]:
    """Another Parley process over the same database (and Redis, on the scale-out stack)."""
    async with running(settings, clock) as other:
        yield other


async def test_two_clients_on_two_processes_see_the_same_stream(
    client: httpx.AsyncClient, app: FastAPI, second_app: FastAPI, stack: str
) -> None:
    if stack == "embedded":
        second_app = app  # in-process pub/sub reaches only its own process
    owner = await register(client)
    conv = await create(client, owner.headers)
    async with (
        serving(app) as one,
        serving(second_app) as two,
        socket(await ws_url(client, one, conv["id"], owner.access_token)) as laptop,
        socket(await ws_url(client, two, conv["id"], owner.access_token)) as phone,
    ):
        await laptop.send(orjson.dumps({"type": "send", "content": "Hello from the laptop"}))
        on_laptop = await until(laptop, "message.completed")
        on_phone = await until(phone, "message.completed")

    for events in (on_laptop, on_phone):
        created = [e["message"] for e in events if e["type"] == "message.created"]
        assert [(m["role"], m["content"]) for m in created] == [
            ("user", "Hello from the laptop"),
            ("assistant", ""),
        ]
        assert reply_text(events) == "Mock reply: Hello from the laptop"
        assert events[-1]["message"]["content"] == "Mock reply: Hello from the laptop"
        assert events[-1]["message"]["status"] == "complete"
    assert on_laptop[-1]["message"]["id"] == on_phone[-1]["message"]["id"]


async def test_replies_posted_over_http_reach_the_socket_too(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    async with (
        serving(app) as url,
        socket(await ws_url(client, url, conv["id"], owner.access_token)) as ws,
    ):
        exchange = await say(client, owner.headers, conv["id"], "Over HTTP")
        events = await until(ws, "message.completed")
    assert events[-1]["message"] == exchange["assistant_message"]


async def test_reconnecting_resumes_after_the_last_message_seen(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    first = await say(client, owner.headers, conv["id"], "First")
    # Missed while away:
    second = await say(client, owner.headers, conv["id"], "Second")
    third = await say(client, owner.headers, conv["id"], "Third")
    last_seen = first["assistant_message"]["id"]
    async with (
        serving(app) as url,
        socket(await ws_url(client, url, conv["id"], owner.access_token, after=last_seen)) as ws,
    ):
        backlog = [await receive(ws) for _ in range(4)]
        assert [e["type"] for e in backlog] == ["message.created"] * 4
        assert [e["message"]["id"] for e in backlog] == [
            second["user_message"]["id"],
            second["assistant_message"]["id"],
            third["user_message"]["id"],
            third["assistant_message"]["id"],
        ]
        assert backlog[-1]["message"]["content"] == "Mock reply: Third"
        # Then live, with nothing repeated.
        await ws.send(orjson.dumps({"type": "ping"}))
        assert (await receive(ws))["type"] == "pong"


async def test_cancel_from_another_client_on_another_process(
    client: httpx.AsyncClient, app: FastAPI, second_app: FastAPI, stack: str
) -> None:
    if stack == "embedded":
        second_app = app
    owner = await register(client)
    conv = await create(client, owner.headers, model="slow-mock")
    words = " ".join(f"w{i}" for i in range(60))
    async with (
        serving(app) as one,
        serving(second_app) as two,
        socket(await ws_url(client, one, conv["id"], owner.access_token)) as laptop,
        socket(await ws_url(client, two, conv["id"], owner.access_token)) as phone,
    ):
        await laptop.send(orjson.dumps({"type": "send", "content": words}))
        seen = []
        while sum(e["type"] == "message.delta" for e in seen) < 3:
            seen.append(await receive(phone))
        await phone.send(orjson.dumps({"type": "cancel"}))
        on_phone = await until(phone, "message.completed")
        acked = any(e["type"] == "cancelled" for e in on_phone)
        ack = [] if acked else await until(phone, "cancelled")
        on_laptop = await until(laptop, "message.completed")

    everything = seen + on_phone + ack
    acks = [e for e in everything if e["type"] == "cancelled"]
    assert acks == [{"type": "cancelled", "conversation_id": conv["id"], "cancelled": True}]
    final = on_laptop[-1]["message"]
    assert final["status"] == "cancelled"
    assert final["content"] == reply_text(on_laptop)
    assert f"Mock reply: {words}".startswith(final["content"])
    assert len(final["content"]) < len(f"Mock reply: {words}")


async def test_closing_the_socket_stops_the_replies_it_started(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="slow-mock")
    async with serving(app) as url:
        async with socket(await ws_url(client, url, conv["id"], owner.access_token)) as ws:
            await ws.send(orjson.dumps({"type": "send", "content": "a b c d e f g h i j k l"}))
            await until(ws, "message.delta")
        for _ in range(200):
            listed = await client.get(
                f"/v1/conversations/{conv['id']}/messages", headers=owner.headers
            )
            last = listed.json()["data"][-1]
            if last["status"] != "streaming":
                break
            await asyncio.sleep(0.02)
    assert last["status"] == "cancelled"


async def test_regenerate_and_edit_over_the_socket(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    exchange = await say(client, owner.headers, conv["id"], "Original")
    async with (
        serving(app) as url,
        socket(await ws_url(client, url, conv["id"], owner.access_token)) as ws,
    ):
        await ws.send(
            orjson.dumps({"type": "regenerate", "message_id": exchange["assistant_message"]["id"]})
        )
        regenerated = await until(ws, "message.completed")
        assert [e["type"] for e in regenerated].count("message.created") == 1
        assert regenerated[-1]["message"]["parent_id"] == exchange["user_message"]["id"]
        await ws.send(
            orjson.dumps(
                {
                    "type": "edit",
                    "message_id": exchange["user_message"]["id"],
                    "content": "Edited",
                }
            )
        )
        edited = await until(ws, "message.completed")
    assert edited[-1]["message"]["content"] == "Mock reply: Edited"


async def test_bad_commands_get_errors_and_the_socket_stays_open(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    async with (
        serving(app) as url,
        socket(await ws_url(client, url, conv["id"], owner.access_token)) as ws,
    ):
        for raw, code in [
            (b"not json", "invalid_command"),
            (b"[1, 2]", "invalid_command"),
            (orjson.dumps({"type": "dance"}), "invalid_command"),
            (orjson.dumps({"type": "send", "content": 5}), "invalid_command"),
            (orjson.dumps({"type": "send", "content": ""}), "invalid_value"),
            (orjson.dumps({"type": "send", "content": "x", "model": "nope"}), "model_not_found"),
            (orjson.dumps({"type": "regenerate"}), "invalid_command"),
        ]:
            await ws.send(raw)
            event = await receive(ws)
            assert event["type"] == "error", (raw, event)
            assert event["error"]["code"] == code, (raw, event)
            assert event["error"]["message"]
        await ws.send(orjson.dumps({"type": "ping"}))
        assert (await receive(ws))["type"] == "pong"


async def refused(address: str, close_code: int, kind: str, **connect_args: Any) -> str:
    """The socket at `address` answers one error event, then closes; its code."""
    async with connect(address, open_timeout=TIMEOUT_S, **connect_args) as ws:
        event = await receive(ws)
        assert event["type"] == "error"
        assert event["error"]["type"] == kind, (address, event)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == close_code
    code: str = event["error"]["code"]
    return code


async def test_tickets_need_credentials_and_access(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    stranger = await register(client)
    conv = await create(client, owner.headers)
    key = await create_key(client, owner, scopes=["conversations"])
    no_scope = await create_key(client, owner, scopes=["inference"])

    cases: list[tuple[str, str, int, str]] = [
        (conv["id"], "not-a-token", 401, "authentication_error"),
        (conv["id"], stranger.access_token, 404, "not_found_error"),
        (conv["id"], no_scope["key"], 403, "permission_error"),
        ("conv_00000000000000000000000000", owner.access_token, 404, "not_found_error"),
    ]
    for conv_id, token, status, kind in cases:
        response = await client.post(
            f"/v1/conversations/{conv_id}/ws-ticket", headers=bearer(token)
        )
        assert_error(response, status, kind)
    missing = await client.post(f"/v1/conversations/{conv['id']}/ws-ticket")
    assert_error(missing, 401, "authentication_error", "missing_credentials")

    # An API key with the conversations scope acts for its organisation.
    async with (
        serving(app) as url,
        socket(await ws_url(client, url, conv["id"], key["key"])) as ws,
    ):
        await ws.send(orjson.dumps({"type": "send", "content": "From a script"}))
        events = await until(ws, "message.completed")
    assert events[-1]["message"]["content"] == "Mock reply: From a script"


async def test_clients_that_can_set_headers_use_the_authorization_header(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    stranger = await register(client)
    conv = await create(client, owner.headers)
    key = await create_key(client, owner, scopes=["conversations"])
    no_scope = await create_key(client, owner, scopes=["inference"])
    async with serving(app) as url:
        address = ws_address(url, conv["id"])
        cases: list[tuple[str, int, str]] = [
            ("not-a-token", 4401, "authentication_error"),
            (stranger.access_token, 4404, "not_found_error"),
            (no_scope["key"], 4403, "permission_error"),
        ]
        for token, close_code, kind in cases:
            await refused(address, close_code, kind, additional_headers=bearer(token))
        code = await refused(address, 4401, "authentication_error")
        assert code == "missing_credentials"
        for token in (owner.access_token, key["key"]):
            async with connect(address, additional_headers=bearer(token)) as ws:
                assert (await receive(ws))["type"] == "ready"
                await ws.send(orjson.dumps({"type": "ping"}))
                assert (await receive(ws))["type"] == "pong"


async def test_losing_access_closes_the_socket(
    client: httpx.AsyncClient, app: FastAPI, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await register(client)
    member = await join(client, owner, owner.org_id, "member")
    conv = await create(client, member.in_org(owner.org_id))
    key = await create_key(client, owner, scopes=["conversations"])
    async with serving(app) as url:
        # Removed from the organisation: the next command is refused and the socket closed.
        member_url = await ws_url(client, url, conv["id"], member.access_token, owner.org_id)
        async with socket(member_url) as ws:
            removed = await client.delete(
                f"/v1/orgs/{owner.org_id}/members/{member.user_id}", headers=owner.headers
            )
            assert removed.status_code == 204, removed.text
            await ws.send(orjson.dumps({"type": "send", "content": "still here?"}))
            event = await receive(ws)
            assert (event["type"], event["error"]["type"]) == ("error", "not_found_error")
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4404

        # A revoked key loses a quiet socket at the next periodic check.
        monkeypatch.setattr(ConversationSocket, "recheck_s", 0.05)
        async with socket(await ws_url(client, url, conv["id"], key["key"])) as ws:
            revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=owner.headers)
            assert revoked.status_code in (200, 204), revoked.text
            event = await receive(ws)
            assert (event["type"], event["error"]["type"]) == ("error", "authentication_error")
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
        listed = await client.get(
            f"/v1/conversations/{conv['id']}/messages", headers=owner.in_org(owner.org_id)
        )
        assert listed.json()["data"] == []  # the removed member's command did nothing

        # The access token behind a ticket ends: so does the socket, at the next check.
        async with socket(await ws_url(client, url, conv["id"], owner.access_token)) as ws:
            clock.advance(seconds=app.state.ctx.settings.access_token_ttl_s + 1)
            event = await receive(ws)
            assert (event["type"], event["error"]["code"]) == ("error", "token_expired")
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
