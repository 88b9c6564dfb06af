"""Routes: /v1/chat/completions, /v1/embeddings, /v1/models, /v1/providers/health.

These keep OpenAI's exact shapes. The handlers read the body themselves (orjson) rather
than through FastAPI's model binding: the dict goes upstream as it came, and the hot path
stays short. The OpenAPI document still describes the bodies (see `openapi_extra`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from parley.context import AppContext
from parley.errors import InvalidRequest, NotFound
from parley.gateway.catalog import ModelSpec
from parley.gateway.errors import StreamInterrupted
from parley.gateway.router import Attempts
from parley.gateway.schemas import ChatCompletionRequest, EmbeddingRequest
from parley.gateway.sse import DONE, encode_data
from parley.http.deps import CurrentOperator, inference_context
from parley.http.errors import error_responses
from parley.orgs.roles import Action

router = APIRouter(prefix="/v1", tags=["inference"])

T = TypeVar("T")
INFERENCE_ERRORS = error_responses(400, 401, 403, 404, 413, 429)
SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}]


def _body_doc(model: type[Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        },
        "security": SECURITY,
    }


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from exc


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


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


def json_response(body: Any, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible; `stream: true` for SSE)",
    responses={**INFERENCE_ERRORS, **error_responses(502, 503, 504)},
    openapi_extra=_body_doc(ChatCompletionRequest),
)
async def chat_completions(request: Request) -> Response:
    ctx = _ctx(request)
    org = await inference_context(ctx, request)
    body, spec, _ = ctx.gateway.prepare_chat(org, await read_json(request))
    request_id: str = request.state.request_id
    ticket = await ctx.gateway.admit(org, request_id, spec, body, counts_message=True)
    try:
        if body.get("stream"):
            return await _stream(ctx, request, org, body, spec, request_id, ticket.headers)
        done = await until_disconnect(request, ctx.gateway.chat(org, request_id, body, spec))
    except BaseException:
        ctx.gateway.release(request_id)  # a no-op once the usage was recorded
        raise
    return json_response(done.body, {**inference_headers(spec, done.attempts), **ticket.headers})


async def _stream(
    ctx: AppContext,
    request: Request,
    org: Any,
    body: dict[str, Any],
    spec: ModelSpec,
    request_id: str,
    limit_headers: dict[str, str],
) -> Response:
    handle, chunks = await until_disconnect(
        request, ctx.gateway.open_stream(org, request_id, body, spec)
    )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                if not chunk.get("choices") and "usage" in chunk and not include_usage:
                    continue
                if not include_usage:
                    chunk.pop("usage", None)
                yield encode_data(chunk)
        except StreamInterrupted as exc:
            # Never a silent cut with a 200: the client sees an error event, then the end.
            yield encode_data(
                {
                    "error": {
                        "type": "api_error",
                        "code": "upstream_interrupted",
                        "message": f"The provider broke off the reply: {exc.cause.message}",
                        "param": None,
                    }
                }
            )
            return
        yield DONE

    headers = {
        **inference_headers(spec, handle.attempts),
        **limit_headers,
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.post(
    "/embeddings",
    summary="Create embeddings (OpenAI-compatible)",
    responses={**INFERENCE_ERRORS, **error_responses(502, 503, 504)},
    openapi_extra=_body_doc(EmbeddingRequest),
)
async def embeddings(request: Request) -> Response:
    ctx = _ctx(request)
    org = await inference_context(ctx, request)
    body = await read_json(request)
    done = await until_disconnect(
        request, ctx.gateway.embeddings(org, request.state.request_id, body)
    )
    return json_response(done.body, {**inference_headers(done.spec, done.attempts), **done.headers})


def _model_json(spec: ModelSpec) -> dict[str, Any]:
    return {"id": spec.name, "object": "model", "created": 0, "owned_by": spec.owned_by}


@router.get(
    "/models",
    summary="The models this key may use (OpenAI-compatible)",
    responses=error_responses(401, 403),
    openapi_extra={"security": SECURITY},
)
async def list_models(request: Request) -> Response:
    ctx = _ctx(request)
    org = await inference_context(ctx, request)
    org.require(Action.INFERENCE)
    data = [_model_json(s) for s in await ctx.gateway.models_for(org)]
    return json_response({"object": "list", "data": data}, {})


@router.get(
    "/models/{model_id:path}",
    summary="One model (OpenAI-compatible)",
    responses=error_responses(401, 403, 404),
    openapi_extra={"security": SECURITY},
)
async def get_model(model_id: str, request: Request) -> Response:
    ctx = _ctx(request)
    org = await inference_context(ctx, request)
    org.require(Action.INFERENCE)
    spec = ctx.gateway.catalog.resolve(model_id)
    if spec is None or spec not in await ctx.gateway.models_for(org):
        raise NotFound(
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return json_response(_model_json(spec), {})


@router.get(
    "/providers/health",
    summary="Each deployment's circuit state, error rate and latency (platform operators)",
    responses=error_responses(401, 403),
)
async def providers_health(request: Request, _operator: CurrentOperator) -> Response:
    # The platform's providers, shared by every tenant: not for an organisation's admins.
    ctx = _ctx(request)
    body = {
        "object": "list",
        "data": ctx.gateway.health(),
        "unavailable_providers": ctx.gateway.unavailable,
        "generated_at": int(time.time()),
    }
    return json_response(body, {})
