"""The live WebSocket of a conversation: every client on it sees every reply stream.

Connect to `/v1/conversations/{id}/ws?ticket=...` with a one-time ticket from
`POST /v1/conversations/{id}/ws-ticket` (browsers cannot set headers on a WebSocket, and a
token in the URL would end up in logs), or with the `Authorization` header (the organisation
then comes from `Parley-Organization` or the `org` parameter); see socket_auth.py.
`after=<message id>` resumes: the messages of the current branch after that one are sent
first (each as `message.created`, as stored), then live events.

Server to client: `ready`, then the events of replies.py from any client and process,
`cancelled` (the answer to a cancel), `pong`, and `error` for a command that failed.
Client to server: `{"type": "send", "content", "model"?}`, `{"type": "regenerate",
"message_id", "model"?}`, `{"type": "edit", "message_id", "content", "model"?}`,
`{"type": "cancel"}`, `{"type": "ping"}`. Closing the socket stops the replies it started.

One command at a time: a send, regenerate, edit or cancel is in flight until it has been
handled (a reply started, or the cancel answered); the reply then streams on in the
background and does not hold the socket, so a cancel can follow it. A command sent while
another is in flight gets an `error` (`command_in_progress`); pings are answered at once.
Every message counts against the socket's rate (`rate_limited` beyond it), and a message
larger than the limit closes the socket with 1009.

A socket that cannot be opened (bad credentials, unknown conversation) gets an `error` event
and is closed with code 4000 + the HTTP status (4401, 4403, 4404); so is one whose access
ends later (checked before every command and every minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from parley.context import AppContext
from parley.conversations.live import Event
from parley.conversations.replies import Reply, error_event, message_out
from parley.conversations.service import ReplyKind
from parley.conversations.socket_auth import SocketCredentials, socket_credentials
from parley.errors import Conflict, InvalidRequest, ParleyError, RateLimited
from parley.kit.ids import new_id
from parley.kit.throttle import SlidingWindow
from parley.principal import OrgContext

COMMANDS: dict[str, ReplyKind] = {"send": "post", "regenerate": "regenerate", "edit": "edit"}
MESSAGE_TOO_BIG = 1009  # RFC 6455


class ConversationSocket:
    # Credentials and access are checked again this often, and before every command, so a
    # revoked key, an expired token or a removed member loses the socket too.
    recheck_s = 60.0

    def __init__(self, app: AppContext, ws: WebSocket, conversation_id: str) -> None:
        self.app = app
        self.ws = ws
        self.conversation_id = conversation_id
        self.commands: set[asyncio.Task[None]] = set()
        self.replies: list[Reply] = []
        self._send_lock = asyncio.Lock()
        self._credentials: SocketCredentials | None = None
        self._in_flight: asyncio.Task[None] | None = None
        settings = app.settings
        self.max_message_bytes = settings.ws_max_message_bytes
        self._rate = SlidingWindow(settings.ws_messages_per_window, settings.ws_message_window_s)

    async def _authorize(self) -> OrgContext:
        if self._credentials is None:  # a ticket is redeemed once, when the socket opens
            self._credentials = await socket_credentials(self.app, self.ws, self.conversation_id)
        org = await self._credentials.context()
        async with self.app.db.read_session() as session:
            await self.app.conversations.get(session, org, self.conversation_id)
        return org

    async def _refuse(self, exc: ParleyError) -> None:
        await self.send(error_event(exc))
        with contextlib.suppress(RuntimeError):
            await self.ws.close(code=4000 + exc.status)

    async def run(self) -> None:
        await self.ws.accept()
        try:
            org = await self._authorize()
        except ParleyError as exc:
            await self._refuse(exc)
            return
        hub = self.app.conversation_hub
        async with hub.events(self.conversation_id) as events:
            # Subscribed before the backlog is read: nothing falls between the two.
            await self.send({"type": "ready", "conversation_id": self.conversation_id})
            await self._backlog(org, self.ws.query_params.get("after"))
            helpers = [asyncio.create_task(self._pump(events)), asyncio.create_task(self._watch())]
            try:
                await self._receive()
            finally:
                for task in [*helpers, *self.commands]:
                    task.cancel()
                for reply in self.replies:  # closing the socket stops what it started
                    reply.task.cancel()
                for task in [*helpers, *self.commands]:
                    with contextlib.suppress(BaseException):
                        await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_s)
            try:
                await self._authorize()
            except ParleyError as exc:
                await self._refuse(exc)
                return

    async def send(self, event: Event) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.ws.send_text(orjson.dumps(event).decode())

    async def _backlog(self, org: OrgContext, after: str | None) -> None:
        if after is None:
            return
        async with self.app.db.read_session() as session:
            rows = await self.app.conversations.messages(session, org, self.conversation_id)
        ids = [m.id for m, _ in rows]
        start = ids.index(after) + 1 if after in ids else 0
        for message, siblings in rows[start:]:
            out = message_out(message, siblings)
            await self.send({"type": "message.created", "message": out.model_dump(mode="json")})

    async def _pump(self, events: Any) -> None:
        async for event in events:
            await self.send(event)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""  # either frame kind
            size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
            if size > self.max_message_bytes:
                await self._too_big()
                return
            wait_s = self._rate.take()
            if wait_s:
                await self.send(error_event(self._rate_limited(wait_s)))
                continue
            try:
                command = orjson.loads(raw)
                if not isinstance(command, dict):
                    raise ValueError
            except ValueError:
                await self.send(error_event(_bad("Each message must be a JSON object.")))
                continue
            kind = command.get("type")
            run: Callable[[OrgContext], Awaitable[None]]
            if kind == "ping":
                await self.send({"type": "pong"})
                continue
            if kind == "cancel":
                run = self._cancel
            elif kind in COMMANDS:
                run = partial(self._start_reply, kind=COMMANDS[kind], command=command)
            else:
                await self.send(
                    error_event(
                        _bad(f"Unknown command {kind!r}: send, regenerate, edit, cancel or ping.")
                    )
                )
                continue
            if self._in_flight is not None and not self._in_flight.done():
                await self.send(error_event(_busy()))
                continue
            task = asyncio.create_task(self._command(run))
            self._in_flight = task
            self.commands.add(task)
            task.add_done_callback(self.commands.discard)

    async def _too_big(self) -> None:
        limit = self.max_message_bytes
        with contextlib.suppress(RuntimeError):
            await self.ws.close(
                code=MESSAGE_TOO_BIG, reason=f"Messages are limited to {limit} bytes."
            )

    def _rate_limited(self, wait_s: float) -> RateLimited:
        limit, window = self._rate.limit, self._rate.window_s
        return RateLimited(
            f"At most {limit} messages per {window:g} s on one socket; this one was dropped. "
            f"Wait {math.ceil(wait_s)} s.",
            retry_after_s=math.ceil(wait_s),
        )

    async def _command(self, run: Callable[[OrgContext], Awaitable[None]]) -> None:
        try:
            org = await self._authorize()
        except ParleyError as exc:
            await self._refuse(exc)
            return
        await run(org)

    async def _cancel(self, org: OrgContext) -> None:
        async with self.app.db.session() as session:
            running = await self.app.conversations.reply_in_progress(
                session, org, self.conversation_id
            )
        if running:
            await self.app.conversation_hub.cancel(self.conversation_id)
        await self.send(
            {"type": "cancelled", "conversation_id": self.conversation_id, "cancelled": running}
        )

    async def _start_reply(self, org: OrgContext, kind: ReplyKind, command: dict[str, Any]) -> None:
        try:
            content = command.get("content")
            message_id = command.get("message_id")
            model = command.get("model")
            if kind != "regenerate" and not isinstance(content, str):
                raise _bad("content must be a string.", param="content")
            if kind != "post" and not isinstance(message_id, str):
                raise _bad("message_id must be a message id.", param="message_id")
            if model is not None and not isinstance(model, str):
                raise _bad("model must be a string.", param="model")
            draft = await self.app.conversations.draft_reply(
                org,
                self.conversation_id,
                kind=kind,
                content=content if kind != "regenerate" else None,
                message_id=message_id,
                model=model,
            )
            reply = await self.app.replies.start(org, new_id("req"), draft, listen=False)
            self.replies.append(reply)
        except ParleyError as exc:
            await self.send(error_event(exc))


def _bad(message: str, *, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_command", param=param)


def _busy() -> Conflict:
    return Conflict(
        "The previous command is still being handled; send this one again once it is "
        "answered (message.created, cancelled or error).",
        code="command_in_progress",
    )
