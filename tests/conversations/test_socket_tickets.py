"""Opening a conversation socket with a one-time ticket (never an access token in the URL),
and what one socket may send: one command in flight, a message rate, a message size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from parley.config import Settings
from tests.conversations.test_conversations import create
from tests.conversations.test_live import (
    TIMEOUT_S,
    receive,
    refused,
    socket,
    ticket,
    until,
    ws_address,
)
from tests.support import (
    FakeClock,
    asgi_client,
    assert_error,
    bearer,
    register,
    running,
    serving,
)


@pytest.fixture
async def second_app(settings: Settings, clock: FakeClock, stack: str) -> AsyncIterator[FastAPI]:
    """Another Parley process over the same database (and Redis, on the scale-out stack)."""
    async with running(settings, clock) as other:
        yield other


async def test_a_ticket_opens_one_socket_once_on_any_process(
    client: httpx.AsyncClient, app: FastAPI, second_app: FastAPI, stack: str, clock: FakeClock
) -> None:
    if stack == "embedded":
        second_app = app  # without Redis, counters (and so single use) are per process
    owner = await register(client)
    conv = await create(client, owner.headers)
    issued = await client.post(f"/v1/conversations/{conv['id']}/ws-ticket", headers=owner.headers)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["object"] == "conversation.ws_ticket"
    assert body["expires_in"] == 30
    assert datetime.fromisoformat(body["expires_at"]) == clock.now + timedelta(seconds=30)

    async with serving(app) as one, serving(second_app) as two:
        # Issued by the first process, redeemed by the second.
        async with socket(ws_address(two, conv["id"], ticket=body["ticket"])) as ws:
            await ws.send(orjson.dumps({"type": "ping"}))
            assert (await receive(ws))["type"] == "pong"
        for base in (one, two):
            code = await refused(
                ws_address(base, conv["id"], ticket=body["ticket"]), 4401, "authentication_error"
            )
            assert code == "ticket_used"


async def test_a_ticket_is_bound_to_its_conversation_and_short_lived(
    client: httpx.AsyncClient, app: FastAPI, clock: FakeClock
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers)
    other = await create(client, owner.headers)
    async with serving(app) as url:
        for_other = await ticket(client, other["id"], owner.access_token)
        address = ws_address(url, conv["id"], ticket=for_other)
        assert await refused(address, 4401, "authentication_error") == "invalid_ticket"

        stale = await ticket(client, conv["id"], owner.access_token)
        clock.advance(seconds=31)
        address = ws_address(url, conv["id"], ticket=stale)
        assert await refused(address, 4401, "authentication_error") == "ticket_expired"

        fresh = await ticket(client, conv["id"], owner.access_token)
        forged = fresh[:-4] + ("AAAA" if not fresh.endswith("AAAA") else "BBBB")
        for bad in (forged, owner.access_token, "nonsense"):
            address = ws_address(url, conv["id"], ticket=bad)
            assert await refused(address, 4401, "authentication_error") == "invalid_ticket"

        # The token in the URL is what tickets replace: refused, with what to do instead.
        address = ws_address(url, conv["id"], access_token=owner.access_token)
        assert await refused(address, 4401, "authentication_error") == "token_in_url"

    # A ticket is no access token either.
    as_token = await client.get("/v1/conversations", headers=bearer(fresh))
    assert_error(as_token, 401, "authentication_error", "invalid_token")


async def test_one_command_in_flight_per_socket(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await register(client)
    conv = await create(client, owner.headers, model="slow-mock")
    replies = app.state.ctx.replies
    entered, release = asyncio.Event(), asyncio.Event()
    start = replies.start

    async def held(*args: Any, **kwargs: Any) -> Any:
        """The first command stays in flight (its reply not yet started) until released."""
        entered.set()
        await release.wait()
        return await start(*args, **kwargs)

    monkeypatch.setattr(replies, "start", held)
    words = " ".join(f"w{i}" for i in range(40))
    async with (
        serving(app) as url,
        socket(
            ws_address(url, conv["id"], ticket=await ticket(client, conv["id"], owner.access_token))
        ) as ws,
    ):
        await ws.send(orjson.dumps({"type": "send", "content": words}))
        await asyncio.wait_for(entered.wait(), TIMEOUT_S)
        for command in ({"type": "send", "content": "too soon"}, {"type": "cancel"}):
            await ws.send(orjson.dumps(command))
            event = await receive(ws)
            assert event["type"] == "error", event
            assert event["error"]["type"] == "conflict_error"
            assert event["error"]["code"] == "command_in_progress"
        await ws.send(orjson.dumps({"type": "ping"}))  # answered at once, never in flight
        assert (await receive(ws))["type"] == "pong"

        release.set()
        streaming = await until(ws, "message.delta")
        # The reply streams on in the background: that holds nothing, so a cancel is taken.
        await ws.send(orjson.dumps({"type": "cancel"}))
        rest = await until(ws, "message.completed")
        acked = [e for e in rest if e["type"] == "cancelled"] or await until(ws, "cancelled")
    assert acked[-1]["cancelled"] is True
    assert rest[-1]["message"]["status"] == "cancelled"
    created = [e["message"]["content"] for e in streaming if e["type"] == "message.created"]
    assert created[0] == words  # the first command, not the refused one


@pytest.fixture
async def limited(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    """An app whose sockets take 5 messages a second, of 1 KiB at most."""
    tight = settings.model_copy(
        update={
            "ws_messages_per_window": 5,
            "ws_message_window_s": 1.0,
            "ws_max_message_bytes": 1024,
        }
    )
    async with running(tight, clock) as app:
        yield app


async def new_socket_address(client: httpx.AsyncClient, url: str) -> str:
    """A new conversation's socket address, with a ticket."""
    owner = await register(client)
    conv = await create(client, owner.headers)
    return ws_address(url, conv["id"], ticket=await ticket(client, conv["id"], owner.access_token))


async def ping(ws: ClientConnection, pad: int = 0) -> dict[str, Any]:
    await ws.send(orjson.dumps({"type": "ping", "pad": "x" * pad}))
    return await receive(ws)


async def test_a_socket_takes_so_many_messages_a_second(limited: FastAPI, clock: FakeClock) -> None:
    async with (
        asgi_client(limited) as client,
        serving(limited) as url,
    ):
        address = await new_socket_address(client, url)
        async with socket(address) as ws:
            assert [(await ping(ws))["type"] for _ in range(5)] == ["pong"] * 5
            event = await ping(ws)
            assert event["type"] == "error", event
            assert event["error"]["type"] == "rate_limit_error"
            assert event["error"]["code"] == "rate_limited"
            assert "5 messages per 1 s" in event["error"]["message"]
            await asyncio.sleep(1.0)  # the window moves on; the socket stayed open
            assert (await ping(ws))["type"] == "pong"


async def test_a_message_over_the_size_limit_closes_the_socket(limited: FastAPI) -> None:
    async with (
        asgi_client(limited) as client,
        serving(limited) as url,
    ):
        address = await new_socket_address(client, url)
        async with socket(address) as ws:
            at_limit = 1024 - len(orjson.dumps({"type": "ping", "pad": ""}))
            assert (await ping(ws, at_limit))["type"] == "pong"  # exactly 1,024 bytes
            await ws.send(orjson.dumps({"type": "ping", "pad": "x" * (at_limit + 1)}))
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert "1024 bytes" in closed.value.rcvd.reason
