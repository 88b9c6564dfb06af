"""Subscriptions: which plan an organisation is on, its current period, and its limits.

Limits are read on every inference request, so they are cached per process for a few
seconds and dropped everywhere at once when a subscription changes (pub/sub).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.backends.pubsub import ChannelListener, PubSub
from parley.billing import repository
from parley.billing.models import QuotaNotice, Subscription
from parley.billing.plans import LIMIT_FIELDS, Plan, PlanLimits, plan_from_row
from parley.db.engine import Database
from parley.db.unit import after_commit
from parley.errors import InvalidRequest, NotFound
from parley.kit.clock import Clock, utcnow
from parley.kit.ids import new_id
from parley.kit.singleflight import SingleFlight

log = structlog.get_logger("parley.billing")

CHANGED_CHANNEL = "subscriptions.changed"
DEFAULT_PLAN = "free"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        with contextlib.suppress(ValueError):
            return moment.replace(year=year, month=month, day=min(moment.day, day))
    raise ValueError("unreachable")


@dataclass(frozen=True, slots=True)
class OrgLimits:
    """An organisation's plan and limits for its current period, as the hot path needs them."""

    org_id: str
    plan: Plan
    limits: PlanLimits
    period_start: datetime
    period_end: datetime
    message_cap: int | None
    spending_cap_micros: int | None
    storage_used_bytes: int
    fetched_at: float

    @property
    def message_limit(self) -> int | None:
        """Where requests stop: the plan's quota on plans without overage, and the org's own
        cap on any plan (the lower of the two)."""
        quota = None if self.limits.overage else self.limits.messages
        if quota is None or self.message_cap is None:
            return self.message_cap if quota is None else quota
        return min(quota, self.message_cap)

    @property
    def stops_at_own_cap(self) -> bool:
        """Whether the org's own message cap, not the plan's quota, is where requests stop."""
        quota = None if self.limits.overage else self.limits.messages
        return self.message_cap is not None and (quota is None or self.message_cap < quota)


class BillingService:
    def __init__(
        self,
        db: Database,
        pubsub: PubSub,
        *,
        overrides: dict[str, dict[str, Any]] | None = None,
        cache_ttl_s: float = 10.0,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.pubsub = pubsub
        self.overrides = overrides or {}
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self.plans: dict[str, Plan] = {}
        self._cache: dict[str, OrgLimits] = {}
        self._lookups: SingleFlight[str, OrgLimits] = SingleFlight()
        self._listener = ChannelListener(
            pubsub,
            CHANGED_CHANNEL,
            lambda message: self._cache.pop(message.decode(), None),
            on_gap=self._cache.clear,
            name="parley-subscription-changes",
        )

    # --- plans ---------------------------------------------------------------------------

    async def load_plans(self) -> None:
        async with self.db.session() as session:
            rows = await repository.all_plans(session)
        self.plans = {r.id: plan_from_row(r, self.overrides.get(r.id)) for r in rows}

    def plan(self, plan_id: str) -> Plan:
        plan = self.plans.get(plan_id)
        if plan is None:
            raise NotFound(
                f"No plan '{plan_id}'; plans are: {', '.join(self.plans)}.", code="plan_not_found"
            )
        return plan

    def plans_with_tier(self, tier: str) -> list[str]:
        return [p.id for p in self.plans.values() if tier in p.limits.model_tiers]

    # --- subscriptions -------------------------------------------------------------------

    def _new_subscription(self, org_id: str) -> Subscription:
        now = self.clock()
        return Subscription(
            id=new_id("sub"),
            org_id=org_id,
            plan_id=DEFAULT_PLAN,
            interval="month",
            status="active",
            current_period_start=now,
            current_period_end=add_months(now, 1),
            created_at=now,
            updated_at=now,
        )

    def start_subscription(self, session: AsyncSession, org_id: str) -> Subscription:
        """New organisations start on the free plan, monthly, from now."""
        subscription = self._new_subscription(org_id)
        session.add(subscription)
        return subscription

    def period(self, sub: Subscription) -> tuple[datetime, datetime]:
        """The subscription's period that contains now (the stored one may have ended)."""
        start, end = sub.current_period_start, sub.current_period_end
        step = 12 if sub.interval == "year" else 1
        now = self.clock()
        while end <= now:
            start, end = end, add_months(end, step)
        return start, end

    async def subscription(self, session: AsyncSession, org_id: str) -> Subscription:
        """The org's subscription for a change, its period rolled forward to contain now."""
        sub = await repository.subscription(session, org_id)
        if sub is None:
            sub = self.start_subscription(session, org_id)
            await session.flush()
        start, end = self.period(sub)
        if (start, end) != (sub.current_period_start, sub.current_period_end):
            sub.current_period_start, sub.current_period_end = start, end
        return sub

    async def current(self, session: AsyncSession, org_id: str) -> Subscription:
        """The org's subscription, to read only: nothing is written (the period a change
        stores is `period(sub)`; a missing row reads as a new free one)."""
        sub = await repository.subscription(session, org_id)
        return sub if sub is not None else self._new_subscription(org_id)

    def _limits_of(self, sub: Subscription) -> OrgLimits:
        plan = self.plan(sub.plan_id)
        limits = plan.limits.with_overrides(sub.custom_limits or {})
        period_start, period_end = self.period(sub)
        return OrgLimits(
            org_id=sub.org_id,
            plan=plan,
            limits=limits,
            period_start=period_start,
            period_end=period_end,
            message_cap=sub.message_cap,
            spending_cap_micros=sub.spending_cap_micros,
            storage_used_bytes=sub.storage_used_bytes,
            fetched_at=time.monotonic(),
        )

    async def limits(self, org_id: str) -> OrgLimits:
        cached = self._cache.get(org_id)
        if (
            cached is not None
            and time.monotonic() - cached.fetched_at < self.cache_ttl_s
            and cached.period_end > self.clock()
        ):
            return cached
        return await self._lookups.run(org_id, lambda: self._load_limits(org_id))

    async def _load_limits(self, org_id: str) -> OrgLimits:
        await self.ensure_plans()
        async with self.db.read_session() as session:
            limits = self._limits_of(await self.current(session, org_id))
        self._cache[org_id] = limits
        return limits

    async def limits_in(self, session: AsyncSession, org_id: str) -> OrgLimits:
        """Uncached, inside the caller's transaction (for checks that must be exact); it
        only reads."""
        await self.ensure_plans()
        return self._limits_of(await self.current(session, org_id))

    async def set_plan(
        self,
        session: AsyncSession,
        org_id: str,
        plan_id: str,
        *,
        interval: str | None = None,
        custom: dict[str, int | None] | None = None,
    ) -> Subscription:
        """Change plan now; the current period goes on (a later issue prorates the bill)."""
        await self.ensure_plans()
        plan = self.plan(plan_id)
        if plan.id != "custom" and any(v is not None for v in (custom or {}).values()):
            raise InvalidRequest(
                "Limits can be set only on the custom plan; the others have their own.",
                code="limits_need_custom_plan",
            )
        sub = await self.subscription(session, org_id)
        sub.plan_id = plan.id
        if interval is not None:
            if interval not in ("month", "year"):
                raise InvalidRequest("interval must be 'month' or 'year'.", param="interval")
            sub.interval = interval
        if plan.id == "custom":
            unknown = set(custom or {}) - set(LIMIT_FIELDS)
            if unknown:
                raise InvalidRequest(f"Unknown limits: {', '.join(sorted(unknown))}.")
            sub.custom_limits = {k: v for k, v in (custom or {}).items() if v is not None}
        else:
            sub.custom_limits = {}
        sub.updated_at = self.clock()
        self._changed(session, org_id)
        return sub

    async def set_caps(
        self,
        session: AsyncSession,
        org_id: str,
        *,
        message_cap: int | None,
        spending_cap_micros: int | None,
    ) -> Subscription:
        sub = await self.subscription(session, org_id)
        sub.message_cap = message_cap
        sub.spending_cap_micros = spending_cap_micros
        sub.updated_at = self.clock()
        self._changed(session, org_id)
        return sub

    def _changed(self, session: AsyncSession, org_id: str) -> None:
        self._cache.pop(org_id, None)

        async def announce() -> None:
            self._cache.pop(org_id, None)
            try:
                await self.pubsub.publish(CHANGED_CHANNEL, org_id.encode())
            except Exception:
                log.warning("billing.change_broadcast_failed", org_id=org_id)

        after_commit(session, announce)

    async def ensure_plans(self) -> None:
        """Plans load at start; when the database was not ready then, on first use."""
        if not self.plans:
            await self.load_plans()

    async def start(self) -> None:
        try:
            await self.load_plans()
        except Exception as exc:
            # Start anyway: /readyz reports the database, and plans load on first use.
            log.warning("billing.plans_not_loaded", error=type(exc).__name__)
        await self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    async def count_on_free_plan(self, session: AsyncSession, org_ids: Sequence[str]) -> int:
        """How many of these organisations are on the free plan (without a subscription
        yet, an organisation starts on it)."""
        plans = await repository.plan_ids(session, org_ids)
        return sum(1 for org_id in set(org_ids) if plans.get(org_id, DEFAULT_PLAN) == DEFAULT_PLAN)

    # --- seats, storage, notices ---------------------------------------------------------

    async def seats(self, session: AsyncSession, org_id: str) -> int | None:
        return (await self.limits_in(session, org_id)).limits.seats

    async def storage(self, org_id: str) -> tuple[int, int | None]:
        """Knowledge-base bytes used and allowed (None: unlimited)."""
        async with self.db.read_session() as session:
            limits = await self.limits_in(session, org_id)
        allowed = limits.limits.storage_mb
        return limits.storage_used_bytes, None if allowed is None else allowed * 1024 * 1024

    async def record_notice(
        self, org_id: str, period_start: datetime, quota: str, threshold: int, used: int, limit: int
    ) -> bool:
        async with self.db.session() as session:
            created = await repository.add_notice(
                session,
                QuotaNotice(
                    id=new_id("qn"),
                    org_id=org_id,
                    period_start=period_start,
                    quota=quota,
                    threshold=threshold,
                    used=used,
                    limit=limit,
                    created_at=self.clock(),
                ),
            )
        if created:
            log.info("quota.threshold_crossed", org_id=org_id, quota=quota, threshold=threshold)
        return created

    async def notices(
        self, session: AsyncSession, org_id: str, period_start: datetime
    ) -> list[QuotaNotice]:
        return list(await repository.notices(session, org_id, period_start))
