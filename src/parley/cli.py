"""`parley serve | migrate | worker | admin ...`"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from parley.accounts.directory import AccountDirectory
from parley.config import MissingSecretKey, Settings
from parley.context import AppContext
from parley.errors import NotFound, ParleyError

app = typer.Typer(
    help="Parley: a self-hostable, multi-tenant AI API platform.", no_args_is_help=True
)
admin = typer.Typer(help="Operator commands.", no_args_is_help=True)
app.add_typer(admin, name="admin")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (PARLEY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (PARLEY_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (one is plenty on SQLite).")] = 1,
) -> None:
    """Start the API server (applies migrations first, runs background jobs in-process)."""
    import uvicorn

    from parley.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    # Before the workers fork: a generated key is made once, and every worker reads it.
    _require_signing_key(settings)
    if workers > 1:
        # Each process builds its own app from the environment.
        uvicorn.run(
            "parley.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
        return
    asgi = create_app(settings)
    _tune_gc()
    uvicorn.run(
        asgi,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


def _require_signing_key(settings: Settings) -> None:
    """The signing key exists (made now in development when missing), or start-up stops
    here saying how to set one."""
    try:
        settings.signing_key()
    except MissingSecretKey as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _tune_gc() -> None:
    """The collector's full passes over everything built at start (frameworks, schemas,
    routes) cost the hot path about a tenth of its time: set those objects aside, and
    collect the young generation less often (measured with bench/gateway.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 10, 10)


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest revision."""
    from parley.db.migrate import upgrade

    settings = Settings()
    upgrade(settings.resolved_database_url)
    typer.echo("database is at the newest revision")


@app.command()
def worker() -> None:
    """Run background jobs (several workers share the queue on PostgreSQL)."""
    from parley.context import AppContext
    from parley.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    _require_signing_key(settings)

    async def run() -> None:
        ctx = AppContext.build(settings)
        await ctx.start(with_worker=True, with_gateway=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await ctx.stop()

    asyncio.run(run())


@admin.command("bootstrap")
def bootstrap_cmd(
    email: Annotated[str, typer.Option(help="The user's email (created if missing).")],
    password: Annotated[str, typer.Option(help="Password for a new user.")],
    org: Annotated[str, typer.Option("--org", help="Organisation name (created if missing).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create (or reuse) a user and an organisation, and make an admin API key."""
    from parley.bootstrap import bootstrap
    from parley.context import AppContext
    from parley.db.migrate import upgrade
    from parley.errors import ParleyError
    from parley.logging import configure_logging

    settings = Settings()
    configure_logging("WARNING", json=settings.log_json)
    _require_signing_key(settings)
    upgrade(settings.resolved_database_url)

    async def run() -> dict[str, object]:
        ctx = AppContext.build(settings)
        try:
            return dataclasses.asdict(
                await bootstrap(ctx, email=email, password=password, org_name=org)
            )
        finally:
            await ctx.db.dispose()
            await ctx.backends.close()

    try:
        result = asyncio.run(run())
    except ParleyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")


@admin.command("set-plan")
def set_plan_cmd(
    org: Annotated[str, typer.Argument(help="Organisation id (org_...).")],
    plan: Annotated[
        str, typer.Argument(help="free | starter | professional | enterprise | custom")
    ],
    interval: Annotated[str | None, typer.Option(help="month or year.")] = None,
    messages: Annotated[int | None, typer.Option(help="Custom: messages per period.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Custom: requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Custom: tokens per minute.")] = None,
    seats: Annotated[int | None, typer.Option(help="Custom: seats.")] = None,
    storage_mb: Annotated[int | None, typer.Option(help="Custom: knowledge-base MB.")] = None,
) -> None:
    """Put an organisation on a plan; custom limits left out keep the enterprise value."""
    custom = {
        "messages": messages,
        "rpm": rpm,
        "tpm": tpm,
        "seats": seats,
        "storage_mb": storage_mb,
    }

    async def change(ctx: AppContext) -> str:
        async with ctx.db.session() as session:
            if await ctx.orgs.find(session, org) is None:
                raise NotFound(f"No organisation {org}.")
            sub = await ctx.billing.set_plan(session, org, plan, interval=interval, custom=custom)
            limits = ctx.billing.plan(sub.plan_id).limits.with_overrides(sub.custom_limits)
        return f"{org} is on {sub.plan_id} ({sub.interval}ly): {limits}"

    typer.echo(_run_admin(change))


@admin.command("grant-operator")
def grant_operator_cmd(
    email: Annotated[str, typer.Argument(help="The user's email.")],
) -> None:
    """Let a user change organisations' plans through the API (platform operator)."""

    async def grant(ctx: AppContext) -> str:
        async with ctx.db.session() as session:
            user = await AccountDirectory().find_by_email(session, email)
            if user is None:
                raise NotFound(f"No user with email {email}.")
            user.is_platform_admin = True
        return f"{email} is a platform operator"

    typer.echo(_run_admin(grant))


def _run_admin(action: Callable[[AppContext], Awaitable[str]]) -> str:
    """Migrate, build the context (billing loaded), run one operator action, report errors."""
    from parley.db.migrate import upgrade
    from parley.logging import configure_logging

    settings = Settings()
    configure_logging("WARNING", json=settings.log_json)
    _require_signing_key(settings)
    upgrade(settings.resolved_database_url)

    async def run() -> str:
        ctx = AppContext.build(settings)
        try:
            await ctx.billing.load_plans()
            return await action(ctx)
        finally:
            await ctx.db.dispose()
            await ctx.backends.close()

    try:
        return asyncio.run(run())
    except ParleyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    app()
