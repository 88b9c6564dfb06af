"""Time is UTC everywhere; the clock and sleeping are injectable so tests can control them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
# Waits that tests replace (asyncio.sleep in production).
Sleep = Callable[[float], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC, so mark it so."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
