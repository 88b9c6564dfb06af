"""create_app(settings): routers, middleware, and the lifespan of engines and workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import structlog
from fastapi import FastAPI

from parley import __version__
from parley.accounts import api as accounts_api
from parley.audit import api as audit_api
from parley.billing import api as billing_api
from parley.config import Settings
from parley.context import AppContext
from parley.conversations import api as conversations_api
from parley.db.migrate import upgrade
from parley.gateway import api as gateway_api
from parley.gateway import messages_api
from parley.gateway.schemas import ChatCompletionRequest, EmbeddingRequest
from parley.http import errors, health, openapi, webapp
from parley.http.middleware import ParleyAPI
from parley.keys import api as keys_api
from parley.kit.clock import Clock, Sleep, utcnow
from parley.logging import configure_logging
from parley.orgs import api as orgs_api
from parley.usage import api as usage_api

log = structlog.get_logger("parley")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
    sleep: Sleep = asyncio.sleep,
    configure_logs: bool = True,
    web_dir: Path | None = None,
) -> FastAPI:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, json=settings.log_json)
    ctx = AppContext.build(settings, clock=clock, sleep=sleep)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await anyio.to_thread.run_sync(upgrade, ctx.db.url)
        await ctx.start(with_worker=settings.run_worker)
        log.info(
            "parley.started",
            version=__version__,
            database=ctx.db.engine.dialect.name,
            backends=ctx.backends.kind,
            worker=settings.run_worker,
        )
        try:
            yield
        finally:
            await ctx.stop()
            log.info("parley.stopped")

    app = ParleyAPI(
        title="Parley",
        version=__version__,
        description="Self-hostable, multi-tenant AI API platform.",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        https=settings.serves_https,
        fast_routes={
            ("POST", "/v1/chat/completions"): gateway_api.chat_completions,
            ("POST", "/v1/embeddings"): gateway_api.embeddings,
            ("POST", "/v1/messages"): messages_api.messages,
        },
    )
    app.state.ctx = ctx
    errors.install(app)
    openapi.install(
        app, body_models=[ChatCompletionRequest, EmbeddingRequest, messages_api.MessagesRequest]
    )
    for router in (
        health.router,
        accounts_api.auth,
        accounts_api.users,
        orgs_api.router,
        orgs_api.invitations,
        audit_api.router,
        keys_api.router,
        billing_api.router,
        billing_api.admin,
        usage_api.router,
        gateway_api.router,
        messages_api.router,
        conversations_api.router,
    ):
        app.include_router(router)
    # Last: the web app (web/dist, or `web_dir`) answers what no API route matched.
    webapp.install(app, web_dir, https=settings.serves_https)
    return app
