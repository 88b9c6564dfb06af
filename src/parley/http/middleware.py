"""Outermost ASGI middleware: request ids, body size limit, one JSON log line per request,
and the error envelope for anything that escaped the handlers."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.errors import ParleyError
from parley.http.errors import envelope, internal_error
from parley.kit.ids import new_id

log = structlog.get_logger("parley.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


FastRoute = Callable[[Request], Awaitable[Response]]

# A year, this host only: subdomains may be other services of the operator's.
_HSTS = (b"strict-transport-security", b"max-age=31536000")


class RequestContextMiddleware:
    """Also the hot path's router: the inference routes are dispatched from here, skipping
    the framework's route matching and dependency solving (which cost more than the rest of
    the request). They stay declared on the app too, for the OpenAPI document."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        fast_routes: dict[tuple[str, str], FastRoute] | None = None,
        https: bool = False,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.fast_routes = fast_routes or {}
        # Browsers reach us over https (PARLEY_PUBLIC_URL): every answer says to stay on it.
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        # Our own id always: it keys the usage ledger, so a client must not choose it.
        # A client's id is kept in the logs next to ours.
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if _REQUEST_ID.match(incoming):
            structlog.contextvars.bind_contextvars(client_request_id=incoming)
        started = time.perf_counter()
        status = {"code": 0}
        added = [(b"x-request-id", request_id.encode())]
        if self.https or scope.get("scheme") == "https":
            added.append(_HSTS)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        try:
            if scope["type"] == "http":
                replay = await self._limited_body(scope, headers, receive)
                if replay is None:
                    response = envelope(
                        413,
                        "invalid_request_error",
                        "payload_too_large",
                        f"Request body is larger than the {self.max_body_bytes} byte limit.",
                    )
                    await response(scope, receive, send_with_id)
                    return
                receive = replay
                fast = self.fast_routes.get((scope["method"], scope["path"]))
                if fast is not None:
                    await self._dispatch(fast, scope, receive, send_with_id)
                    return
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status["code"] = status["code"] or 499  # nobody left to answer
        except Exception:
            log.exception("request.unhandled_error", path=scope.get("path"))
            if status["code"] == 0 and scope["type"] == "http":
                await internal_error()(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status["code"] or 500,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id", "client_request_id")

    async def _dispatch(
        self, handler: FastRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            response = await handler(Request(scope, receive))
        except ParleyError as exc:
            response = envelope(exc.status, exc.type, exc.code, exc.message, exc.param, exc.headers)
        await response(scope, receive, send)

    async def _limited_body(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> Receive | None:
        """Reject a declared oversized body at once; count an undeclared one as it arrives."""
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > self.max_body_bytes:
                    return None
            except ValueError:
                return None
            return receive
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return receive
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break
        replayed = iter(chunks)

        async def replay() -> Message:
            try:
                return next(replayed)
            except StopIteration:
                return await receive()

        return replay


class ParleyAPI(FastAPI):
    """FastAPI with RequestContextMiddleware in front of all of it: the hot path skips the
    framework's own layers (telemetry, body limit, error middleware, routing), which cost
    more per request than the gateway's work. Everything else passes through unchanged."""

    def __init__(
        self,
        *,
        max_body_bytes: int,
        fast_routes: dict[tuple[str, str], FastRoute],
        https: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # The framework's error middleware now sits inside ours and answers first: with
        # our envelope, then re-raises for us to log.
        self.add_exception_handler(Exception, _internal_error)
        self.entry = RequestContextMiddleware(
            super().__call__, max_body_bytes=max_body_bytes, fast_routes=fast_routes, https=https
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # as Starlette sets it, for the fast routes' Request.app
        await self.entry(scope, receive, send)


async def _internal_error(_request: Request, _exc: Exception) -> Response:
    return internal_error()


def client_ip(scope: dict[str, Any]) -> str | None:
    client = scope.get("client")
    return client[0] if client else None
