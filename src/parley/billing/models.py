from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, IdMixin, TimestampMixin
from parley.kit.clock import utcnow


class PlanRow(Base):
    """A plan as sold. Seeded by migration; the config file may override its values."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    monthly_micros: Mapped[int] = mapped_column(BigInteger)
    annual_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    overage_micros_per_message: Mapped[int] = mapped_column(BigInteger, default=0)
    messages: Mapped[int | None] = mapped_column(Integer)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    seats: Mapped[int | None] = mapped_column(Integer)
    storage_mb: Mapped[int | None] = mapped_column(Integer)
    model_tiers: Mapped[list[str]] = mapped_column(default=list)
    priority_routing: Mapped[bool] = mapped_column(default=False)
    overage: Mapped[bool] = mapped_column(default=False)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class Subscription(IdMixin, TimestampMixin, Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("org_id"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    interval: Mapped[str] = mapped_column(String(10), default="month")  # month | year
    status: Mapped[str] = mapped_column(String(20), default="active")
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    custom_limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The organisation's own hard limits on a paid plan (no overage past them).
    message_cap: Mapped[int | None] = mapped_column(Integer, default=None)
    spending_cap_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    storage_used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class QuotaNotice(IdMixin, Base):
    """An organisation crossed 80% or 100% of a quota: recorded once per period."""

    __tablename__ = "quota_notices"
    __table_args__ = (UniqueConstraint("org_id", "period_start", "quota", "threshold"),)

    org_id: Mapped[str] = mapped_column(String(40), index=True)
    period_start: Mapped[datetime]
    quota: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(BigInteger)
    limit: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
