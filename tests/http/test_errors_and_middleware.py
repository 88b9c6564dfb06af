"""The HTTP edge: error envelope, request ids, body limits, health probes, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from parley.app import create_app
from parley.config import Settings
from tests.support import FakeClock, assert_error, register


async def test_every_response_gets_its_own_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-request-id"].startswith("req_")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # A client's id cannot take the place of ours (ours keys the usage ledger).
    chosen = await client.get("/healthz", headers={"x-request-id": "req_chosen-by-client"})
    assert chosen.headers["x-request-id"] != "req_chosen-by-client"
    assert chosen.headers["x-request-id"].startswith("req_")


async def test_unknown_route_and_method_use_the_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/nothing-here"), 404, "not_found_error")
    assert_error(await client.put("/v1/auth/login"), 405, "invalid_request_error")


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login",
        content=b'{"email": "a@b.c", ',
        headers={"content-type": "application/json"},
    )
    error = assert_error(response, 400, "invalid_request_error", "invalid_json")
    assert "JSON" in error["message"]


async def test_wrong_types_and_missing_fields_name_the_param(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/auth/register", json={"email": "a@example.com"})
    error = assert_error(missing, 422, "invalid_request_error", "validation_error")
    assert error["param"] == "password"
    wrong = await client.post("/v1/auth/login", json={"email": "a@example.com", "password": 5})
    error = assert_error(wrong, 422, "invalid_request_error", "validation_error")
    assert error["param"] == "password"
    assert "password" in error["message"]
    not_object = await client.post("/v1/auth/login", json=[1, 2])
    assert_error(not_object, 422, "invalid_request_error", "validation_error")


async def test_bad_query_parameters_are_422(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.get("/v1/api-keys?limit=0", headers=account.headers)
    error = assert_error(response, 422, "invalid_request_error", "validation_error")
    assert error["param"] == "limit"
    response = await client.get("/v1/api-keys?limit=abc", headers=account.headers)
    assert_error(response, 422, "invalid_request_error")


async def test_bad_organization_header_is_400(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.get(
        "/v1/api-keys", headers={**account.headers, "Parley-Organization": "not-an-org"}
    )
    assert_error(response, 400, "invalid_request_error", "invalid_organization")


@pytest.fixture
async def small_body_app(
    make_settings: Callable[..., Settings], clock: FakeClock, redis_cleanup: None
) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(max_body_bytes=200), clock=clock, configure_logs=False)
    async with app.router.lifespan_context(app):
        yield app


async def test_oversized_bodies_are_413_declared_or_streamed(small_body_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=small_body_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
        big = json.dumps({"email": "a@example.com", "password": "x" * 500}).encode()
        declared = await c.post(
            "/v1/auth/login", content=big, headers={"content-type": "application/json"}
        )
        error = assert_error(declared, 413, "invalid_request_error", "payload_too_large")
        assert "200 byte" in error["message"]

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 64):
                yield big[i : i + 64]

        streamed = await c.post(
            "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_error(streamed, 413, "invalid_request_error", "payload_too_large")

        # A body under the limit still gets through, chunked or not.
        small = json.dumps({"email": "a@example.com", "password": "wrong-password"}).encode()

        async def small_chunks() -> AsyncIterator[bytes]:
            yield small[:10]
            yield small[10:]

        ok = await c.post(
            "/v1/auth/login", content=small_chunks(), headers={"content-type": "application/json"}
        )
        assert_error(ok, 401, "authentication_error", "invalid_credentials")


async def test_unexpected_errors_become_a_500_envelope(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.get("/boom-for-test")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    response = await client.get("/boom-for-test")
    error = assert_error(response, 500, "api_error", "internal_error")
    assert "secret internal detail" not in response.text
    assert "x-request-id" in error["message"]


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    alive = await client.get("/healthz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["migrations"] == "ok"


async def test_readyz_says_when_migrations_are_missing(
    make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: object, redis_cleanup: None
) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/empty.db", redis_url=None, run_worker=False
    )
    app = create_app(settings, clock=clock, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["migrations"] != "ok"


async def test_readyz_says_when_the_database_is_down(
    make_settings: Callable[..., Settings], clock: FakeClock, redis_cleanup: None
) -> None:
    settings = make_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        redis_url=None,
        run_worker=False,
    )
    app = create_app(settings, clock=clock, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")


async def test_openapi_documents_every_route_with_its_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["schemas"]["ErrorEnvelope"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            if path in ("/healthz", "/readyz"):
                continue
            codes = set(operation["responses"])
            error_codes = {c for c in codes if c.startswith(("4", "5"))}
            assert error_codes, f"{method} {path} documents no errors"
            for code in error_codes - {"503"}:
                ref = operation["responses"][code]["content"]["application/json"]["schema"]
                assert ref["$ref"].endswith("/ErrorEnvelope"), f"{method} {path} {code}"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
