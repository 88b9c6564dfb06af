from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, IdMixin
from parley.kit.clock import utcnow


class UsageEvent(IdMixin, Base):
    """Keyed by the request id, so recording the same request twice keeps one event."""

    __tablename__ = "usage_events"
    __table_args__ = (Index("ix_usage_events_org_id_created_at", "org_id", "created_at"),)

    org_id: Mapped[str] = mapped_column(String(40))
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    endpoint: Mapped[str] = mapped_column(String(40))  # chat | embeddings | messages
    model: Mapped[str] = mapped_column(String(200))  # as the client asked
    provider: Mapped[str | None] = mapped_column(String(100))
    deployment_model: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # ok | error | incomplete | cancelled
    # Messages in the plan's sense: the choices of a chat reply that reached the client (a
    # request with n choices is n messages). Overage: those past the plan's quota.
    messages: Mapped[int] = mapped_column(Integer, default=0)
    overage_messages: Mapped[int] = mapped_column(Integer, default=0)
    error_type: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageDaily(Base):
    """Per-day sums of the ledger, kept as events are written: reports read these rows
    instead of scanning every event of a long range."""

    __tablename__ = "usage_daily"

    org_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "" for users
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "" for keys
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    overage_messages: Mapped[int] = mapped_column(BigInteger, default=0)
