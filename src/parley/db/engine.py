"""The async engine and session factory, for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from parley.db.unit import discard_after_commit, run_after_commit

# Set on the engine that read-only sessions use: on SQLite they never take the write lock.
READ_ONLY = "parley_read_only"


class ReadOnlyViolation(RuntimeError):
    """Something tried to write through a read-only session: a bug, caught where it happens."""


class ReadOnlySession(Session):
    """Refuses writes: on SQLite it holds no write lock, and one taken on the way (a lock
    upgrade) can fail with SQLITE_BUSY, so a write here is a bug in the caller, who should
    use `Database.session()`."""


@event.listens_for(ReadOnlySession, "before_flush")
def _no_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyViolation("A read-only session cannot write; use Database.session().")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _no_write_statements(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyViolation("A read-only session cannot write; use Database.session().")


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


class Database:
    def __init__(self, url: str, *, sqlite_pragmas: dict[str, str] | None = None) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            ensure_sqlite_dir(url)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # The same pool, for reads only (see `read_session`).
        self.read_engine: AsyncEngine = self.engine.execution_options(**{READ_ONLY: True})
        if self.is_sqlite:
            self._install_sqlite_pragmas(sqlite_pragmas or {})
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(
            self.read_engine, expire_on_commit=False, sync_session_class=ReadOnlySession
        )
        # Told after a commit that enqueued jobs, so a local worker runs them at once.
        self.jobs_committed: Callable[[], None] | None = None

    def _install_sqlite_pragmas(self, pragmas: dict[str, str]) -> None:
        @event.listens_for(self.engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy manage transactions and take the write lock at BEGIN, so two
            # writers queue on busy_timeout instead of failing on a lock upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for name, value in pragmas.items():
                cur.execute(f"PRAGMA {name}={value}")
            cur.close()

        @event.listens_for(self.engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN and queue for it on busy_timeout. Readers
            # never take it: each of their statements is its own deferred transaction, so
            # they run beside each other and beside the one writer (WAL), and each sees
            # what was committed when it ran, as on PostgreSQL (READ COMMITTED), which the
            # code already assumes. One BEGIN for them all would pin the first statement's
            # snapshot for the whole request, behind in-process state that moves on.
            if not conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits once at the end, rolls back on error.

        An error that says `keep_changes` (a failed login still records its audit event)
        commits what was written before it is raised on.
        """
        async with self.sessionmaker() as session:
            try:
                yield session
            except BaseException as exc:
                if getattr(exc, "keep_changes", False):
                    await self._commit(session)
                else:
                    await session.rollback()
                    session.info.pop("enqueued_jobs", None)
                    discard_after_commit(session)
                raise
            await self._commit(session)

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that only reads: nothing is committed, writing raises
        ReadOnlyViolation, and on SQLite it never takes the write lock (see _on_begin)."""
        async with self.read_sessionmaker() as session:
            yield session

    async def _commit(self, session: AsyncSession) -> None:
        await session.commit()
        if session.info.pop("enqueued_jobs", None) and self.jobs_committed is not None:
            self.jobs_committed()
        await run_after_commit(session)

    async def ping(self) -> None:
        async with self.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
