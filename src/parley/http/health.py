"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from parley.db.migrate import current_revisions, head_revisions
from parley.http.deps import App
from parley.http.responses import FastJSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and its schema is current",
    responses={503: {"description": "Not ready; `checks` says what failed"}},
)
async def readyz(app: App) -> Response:
    checks: dict[str, Any] = {}
    ready = True
    try:
        await app.db.ping()
        checks["database"] = "ok"
        current = await current_revisions(app.db.read_engine)
        heads = head_revisions(app.db.url)
        checks["migrations"] = (
            "ok" if current == heads else f"at {sorted(current)}, head is {sorted(heads)}"
        )
        ready = current == heads
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    if app.backends.redis is not None:
        try:
            await app.backends.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
            ready = False
    return FastJSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
