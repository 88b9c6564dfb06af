"""A bare `Database` over the test's database (SQLite or PostgreSQL) for driving the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley.config import Settings
from parley.db.engine import Database


@pytest.fixture
async def db(database_url: str, settings: Settings) -> AsyncIterator[Database]:
    database = Database(database_url, sqlite_pragmas=settings.sqlite_pragmas)
    try:
        yield database
    finally:
        await database.dispose()
