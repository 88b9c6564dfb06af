"""The OpenAPI document as clients see it: every error is the Parley envelope."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


def _add_models(spec: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """Bodies read by hand (the gateway's) still get their schemas in the document."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def install(app: FastAPI, *, body_models: list[type[BaseModel]] | None = None) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        # FastAPI documents validation failures with its own schema; ours answer the envelope.
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                response = operation.get("responses", {}).get("422")
                if response is not None:
                    response["description"] = "Body or parameters fail validation"
                    response["content"] = {"application/json": {"schema": {"$ref": _ENVELOPE_REF}}}
        _add_models(spec, body_models or [])
        schemas = spec.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
