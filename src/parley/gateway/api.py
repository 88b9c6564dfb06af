"""Routes: /v1/chat/completions, /v1/embeddings, /v1/models, /v1/providers/health.

These keep OpenAI's exact shapes. The handlers read the body themselves (orjson) rather
than through FastAPI's model binding: the dict goes upstream as it came, and the hot path
stays short. The OpenAPI document still describes the bodies (see `openapi_extra`).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.errors import NotFound
from parley.gateway.catalog import ModelSpec
from parley.gateway.pipeline import (
    OpenAIShape,
    app_of,
    inference_headers,
    json_response,
    read_json,
    serve_chat,
    until_disconnect,
)
from parley.gateway.schemas import ChatCompletionRequest, EmbeddingRequest
from parley.http.deps import CurrentOperator, inference_context
from parley.http.errors import error_responses
from parley.orgs.roles import Action

router = APIRouter(prefix="/v1", tags=["inference"])

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


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible; `stream: true` for SSE)",
    responses={**INFERENCE_ERRORS, **error_responses(502, 503, 504)},
    openapi_extra=_body_doc(ChatCompletionRequest),
)
async def chat_completions(request: Request) -> Response:
    app = app_of(request)
    org = await inference_context(app, request)
    body, spec, _ = app.gateway.prepare_chat(org, await read_json(request))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return await serve_chat(request, org, body, spec, OpenAIShape(include_usage), endpoint="chat")


@router.post(
    "/embeddings",
    summary="Create embeddings (OpenAI-compatible)",
    responses={**INFERENCE_ERRORS, **error_responses(502, 503, 504)},
    openapi_extra=_body_doc(EmbeddingRequest),
)
async def embeddings(request: Request) -> Response:
    app = app_of(request)
    org = await inference_context(app, request)
    body = await read_json(request)
    done = await until_disconnect(
        request, app.gateway.embeddings(org, request.state.request_id, body)
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
    app = app_of(request)
    org = await inference_context(app, request)
    org.require(Action.INFERENCE)
    data = [_model_json(s) for s in await app.gateway.models_for(org)]
    return json_response({"object": "list", "data": data}, {})


@router.get(
    "/models/{model_id:path}",
    summary="One model (OpenAI-compatible)",
    responses=error_responses(401, 403, 404),
    openapi_extra={"security": SECURITY},
)
async def get_model(model_id: str, request: Request) -> Response:
    app = app_of(request)
    org = await inference_context(app, request)
    org.require(Action.INFERENCE)
    spec = app.gateway.catalog.resolve(model_id)
    if spec is None or spec not in await app.gateway.models_for(org):
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
    app = app_of(request)
    body = {
        "object": "list",
        "data": app.gateway.health(),
        "unavailable_providers": app.gateway.unavailable,
        "generated_at": int(time.time()),
    }
    return json_response(body, {})
