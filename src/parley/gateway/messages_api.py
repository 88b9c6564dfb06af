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
from starlette.responses import Response

from parley.errors import InvalidRequest, ParleyError
from parley.gateway.api import INFERENCE_ERRORS, SECURITY
from parley.gateway.catalog import ModelSpec
from parley.gateway.errors import StreamInterrupted
from parley.gateway.formats.anthropic_compat import (
    anthropic_to_openai_request,
    openai_chunks_to_anthropic_events,
    openai_to_anthropic_response,
)
from parley.gateway.pipeline import app_of, interrupted_error, read_json, serve_chat
from parley.gateway.providers.base import Json
from parley.gateway.schemas import validate
from parley.gateway.sse import encode_event
from parley.http.deps import inference_context
from parley.http.errors import error_responses

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
    app = app_of(request)
    org = await inference_context(app, request)
    body = await read_json(request)
    validate(MessagesRequest, body)
    try:
        chat_request = anthropic_to_openai_request(body)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    chat_request, spec, _ = app.gateway.prepare_chat(org, chat_request)
    return await serve_chat(request, org, chat_request, spec, ANTHROPIC, endpoint="messages")


class AnthropicShape:
    """Anthropic's Messages API, translated from the internal (OpenAI) shape."""

    def body(self, completion: Json, spec: ModelSpec) -> Json:
        return openai_to_anthropic_response(completion, spec.name)

    async def events(self, chunks: AsyncIterator[Json], spec: ModelSpec) -> AsyncIterator[bytes]:
        async for event, data in openai_chunks_to_anthropic_events(chunks, spec.name):
            yield encode_event(event, data)

    def interrupted(self, exc: StreamInterrupted) -> bytes:
        error = interrupted_error(exc)
        inner = {"type": error["type"], "message": error["message"]}
        return encode_event("error", {"type": "error", "error": inner})

    def end(self) -> bytes:
        return b""  # message_stop is the translation's last event


ANTHROPIC = AnthropicShape()
