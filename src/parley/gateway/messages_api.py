"""Route: /v1/messages, Anthropic's Messages API served by any provider through translation.

Errors here take Anthropic's shape (`{"type": "error", "error": {...}}`) so the `anthropic`
SDK reads them; the inner object still carries Parley's `code` and `param`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from parley.errors import InvalidRequest, ParleyError
from parley.gateway.api import (
    INFERENCE_ERRORS,
    SECURITY,
    _ctx,
    inference_headers,
    json_response,
    read_json,
    until_disconnect,
)
from parley.gateway.catalog import ModelSpec
from parley.gateway.errors import StreamInterrupted
from parley.gateway.formats.anthropic_compat import (
    anthropic_to_openai_request,
    openai_chunks_to_anthropic_events,
    openai_to_anthropic_response,
)
from parley.gateway.schemas import validate
from parley.gateway.sse import encode_event
from parley.http.deps import inference_context
from parley.http.errors import error_responses
from parley.principal import OrgContext

router = APIRouter(prefix="/v1", tags=["inference"])


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(_Open):
    """Anthropic's Messages request."""

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def anthropic_error(exc: ParleyError) -> Response:
    error = {
        "type": _ANTHROPIC_TYPES.get(exc.status, "api_error"),
        "code": exc.code,
        "message": exc.message,
        "param": exc.param,
    }
    return Response(
        orjson.dumps({"type": "error", "error": error}),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers,
    )


@router.post(
    "/messages",
    summary="Create a message (Anthropic-compatible; any provider answers)",
    responses={**INFERENCE_ERRORS, **error_responses(502, 503, 504)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MessagesRequest"}}
            },
        },
        "security": SECURITY,
    },
)
async def messages(request: Request) -> Response:
    try:
        return await _messages(request)
    except ParleyError as exc:
        return anthropic_error(exc)


async def _messages(request: Request) -> Response:
    ctx = _ctx(request)
    org = await inference_context(ctx, request)
    body = await read_json(request)
    validate(MessagesRequest, body)
    try:
        chat_request = anthropic_to_openai_request(body)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    chat_request, spec, _ = ctx.gateway.prepare_chat(org, chat_request)
    request_id: str = request.state.request_id
    ticket = await ctx.gateway.admit(org, request_id, spec, chat_request, counts_message=True)
    try:
        return await _answer(request, org, body, chat_request, spec, request_id, ticket.headers)
    except BaseException:
        ctx.gateway.release(request_id)  # a no-op once the usage was recorded
        raise


async def _answer(
    request: Request,
    org: OrgContext,
    body: dict[str, Any],
    chat_request: dict[str, Any],
    spec: ModelSpec,
    request_id: str,
    limit_headers: dict[str, str],
) -> Response:
    ctx = _ctx(request)
    if body.get("stream"):
        handle, chunks = await until_disconnect(
            request,
            ctx.gateway.open_stream(org, request_id, chat_request, spec, endpoint="messages"),
        )

        async def events() -> AsyncIterator[bytes]:
            try:
                async for event, data in openai_chunks_to_anthropic_events(chunks, spec.name):
                    yield encode_event(event, data)
            except StreamInterrupted as exc:
                yield encode_event(
                    "error",
                    {
                        "type": "error",
                        "error": {
                            "type": "api_error",
                            "message": f"The provider broke off the reply: {exc.cause.message}",
                        },
                    },
                )

        headers = {
            **inference_headers(spec, handle.attempts),
            **limit_headers,
            "cache-control": "no-cache",
        }
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
    done = await until_disconnect(
        request, ctx.gateway.chat(org, request_id, chat_request, spec, endpoint="messages")
    )
    return json_response(
        openai_to_anthropic_response(done.body, spec.name),
        {**inference_headers(spec, done.attempts), **limit_headers},
    )
