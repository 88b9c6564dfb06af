"""One pipeline for every inference route: admission, the call (plain or streamed), release
on error, disconnect handling and the stream relay exist here once; a route only parses its
wire shape and gives an encoder for its answers (OpenAI's here, Anthropic's in
messages_api.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from parley.context import AppContext
from parley.errors import InvalidRequest
from parley.gateway.catalog import ModelSpec
from parley.gateway.errors import StreamInterrupted, stream_broke_off
from parley.gateway.providers.base import Json
from parley.gateway.router import Attempts
from parley.gateway.sse import DONE, encode_data
from parley.principal import OrgContext

T = TypeVar("T")


class WireShape(Protocol):
    """How one API shape writes answers and errors."""

    def body(self, completion: Json, spec: ModelSpec) -> Json:
        """A complete answer, from Parley's internal (OpenAI) completion."""
        ...

    def events(self, chunks: AsyncIterator[Json], spec: ModelSpec) -> AsyncIterator[bytes]:
        """The encoded stream, from Parley's internal (OpenAI) chunks."""
        ...

    def interrupted(self, exc: StreamInterrupted) -> bytes:
        """The event that ends a stream the provider broke off (never a silent cut)."""
        ...

    def end(self) -> bytes:
        """What follows the last event of a complete stream (may be empty)."""
        ...


def app_of(request: Request) -> AppContext:
    app: AppContext = request.app.state.ctx
    return app


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from exc


def json_response(body: Any, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def inference_headers(spec: ModelSpec, attempts: Attempts) -> dict[str, str]:
    headers = {"x-parley-attempts": str(attempts.count), "x-parley-model": spec.name}
    if attempts.deployment is not None:
        headers["x-parley-provider"] = attempts.deployment.provider
    return headers


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and its upstream call) if the client goes away first."""
    current = asyncio.current_task()
    assert current is not None

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                current.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await work
    finally:
        watcher.cancel()


async def serve_chat(
    request: Request,
    org: OrgContext,
    body: Json,
    spec: ModelSpec,
    shape: WireShape,
    *,
    endpoint: str,
) -> Response:
    """Answer a validated chat request: admitted (one message per choice), called, streamed
    or not, and metered once however it ends."""
    app = app_of(request)
    request_id: str = request.state.request_id
    ticket = await app.gateway.admit(org, request_id, spec, body, counts_message=True)
    try:
        if body.get("stream"):
            handle, chunks = await until_disconnect(
                request, app.gateway.open_stream(org, request_id, body, spec, endpoint=endpoint)
            )
            headers = {
                **inference_headers(spec, handle.attempts),
                **ticket.headers,
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            }
            return StreamingResponse(
                _stream(shape, chunks, spec), media_type="text/event-stream", headers=headers
            )
        done = await until_disconnect(
            request, app.gateway.chat(org, request_id, body, spec, endpoint=endpoint)
        )
    except BaseException:
        app.gateway.release(request_id)  # a no-op once the usage was recorded
        raise
    headers = {**inference_headers(spec, done.attempts), **ticket.headers}
    return json_response(shape.body(done.body, spec), headers)


async def _stream(
    shape: WireShape, chunks: AsyncIterator[Json], spec: ModelSpec
) -> AsyncIterator[bytes]:
    try:
        async for event in shape.events(chunks, spec):
            yield event
    except StreamInterrupted as exc:
        yield shape.interrupted(exc)
        return
    if end := shape.end():
        yield end


def interrupted_error(exc: StreamInterrupted) -> Json:
    """The error that ends a stream the provider broke off (the provider's own words go to
    the log, never to the client)."""
    return {
        "type": "api_error",
        "code": "upstream_interrupted",
        "message": stream_broke_off(exc),
        "param": None,
    }


class OpenAIShape:
    """OpenAI's Chat Completions: the internal shape itself, with the usage chunk only for
    clients that asked for it (`stream_options.include_usage`)."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def body(self, completion: Json, spec: ModelSpec) -> Json:
        return completion

    async def events(self, chunks: AsyncIterator[Json], spec: ModelSpec) -> AsyncIterator[bytes]:
        include_usage = self.include_usage
        async for chunk in chunks:
            if not include_usage:
                if not chunk.get("choices") and "usage" in chunk:
                    continue
                chunk.pop("usage", None)
            yield encode_data(chunk)

    def interrupted(self, exc: StreamInterrupted) -> bytes:
        return encode_data({"error": interrupted_error(exc)})

    def end(self) -> bytes:
        return DONE
