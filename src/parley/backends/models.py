"""The table behind the database pub/sub (see backends/broadcast.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base
from parley.kit.clock import utcnow


class Broadcast(Base):
    """One announcement, read by every process that polls the table. Ids are never reused
    (AUTOINCREMENT on SQLite), so "after the last id seen" is exact."""

    __tablename__ = "broadcasts"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    channel: Mapped[str] = mapped_column(String(100))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    origin: Mapped[str] = mapped_column(String(32))  # the publishing process
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
