"""Time is UTC everywhere; the clock is injectable so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC, so mark it so."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
