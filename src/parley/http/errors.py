"""Every error leaves as `{"error": {type, code, message, param}}` with the right status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.errors import ParleyError
from parley.http.responses import FastJSONResponse

log = structlog.get_logger("parley.http")


class ErrorBody(BaseModel):
    type: str
    code: str
    message: str
    param: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


_DESCRIPTIONS = {
    400: "Invalid request (malformed JSON or a value that makes no sense)",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated, but not allowed to do this",
    404: "No such object (or it belongs to another organisation)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Body or parameters fail validation",
    429: "Rate limited; see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the errors a route can answer."""
    return {
        s: {"model": ErrorEnvelope, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses
    }


def envelope(
    status: int,
    type_: str,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> FastJSONResponse:
    body = {"error": {"type": type_, "code": code, "message": message, "param": param}}
    return FastJSONResponse(body, status_code=status, headers=headers)


_STATUS_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "unauthenticated"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "payload_too_large"),
    429: ("rate_limit_error", "rate_limited"),
}


def _describe_validation(exc: RequestValidationError) -> tuple[str, str, str | None]:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return (
            "invalid_json",
            "Request body is not valid JSON: " + str(first.get("ctx", {}).get("error", "")),
            None,
        )
    messages = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        messages.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "validation_error", "; ".join(messages) + more, param


def install(app: FastAPI) -> None:
    @app.exception_handler(ParleyError)
    async def _parley_error(_request: Request, exc: ParleyError) -> FastJSONResponse:
        return envelope(exc.status, exc.type, exc.code, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> FastJSONResponse:
        code, message, param = _describe_validation(exc)
        status = 400 if code == "invalid_json" else 422
        return envelope(status, "invalid_request_error", code, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        type_, code = _STATUS_TYPES.get(exc.status_code, ("api_error", "http_error"))
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "No such route; see /openapi.json for the API."
        return envelope(exc.status_code, type_, code, message, headers=exc.headers)


def internal_error() -> FastJSONResponse:
    return envelope(
        500,
        "api_error",
        "internal_error",
        "Something went wrong on our side; retry, and quote the x-request-id if it persists.",
    )
