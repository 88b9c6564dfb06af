"""Quotas and rate limits, enforced atomically before the provider is called.

One admission checks (and takes) everything at once: requests and tokens per minute for
the organisation and the API key, the period's message quota and the spending cap. It
costs one Redis round trip (or none in-process). After the call, `settle` keeps the
message (or gives it back when the call failed) and corrects the token estimate.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from parley.backends.limits import Adjustment, Admission, Counter, Limiter
from parley.billing.service import BillingService, OrgLimits
from parley.db.engine import Database
from parley.errors import ParleyError, PermissionDenied, RateLimited
from parley.kit.clock import Clock, utcnow
from parley.kit.singleflight import SingleFlight
from parley.principal import OrgContext
from parley.usage import repository
from parley.usage.recorder import UsageRecorder

log = structlog.get_logger("parley.quotas")

WINDOW_S = 60
NOTICE_THRESHOLDS = (80, 100)


class QuotaExceeded(ParleyError):
    status = 429
    type = "quota_exceeded"
    default_code = "quota_exceeded"

    def __init__(self, message: str, *, code: str, retry_after_s: int) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after_s))})


@dataclass
class Ticket:
    """What an admitted request took, to settle after the call."""

    org_id: str
    limits: OrgLimits
    counters: list[Counter]
    admission: Admission
    estimate_tokens: int
    counts_message: bool
    message_index: int | None = None
    key_index: int | None = None  # where the API key's requests and tokens counters start
    overage: bool = False
    settled: bool = False
    headers: dict[str, str] = field(default_factory=dict)


# A ticket and how its call ended: ok, total tokens, cost in micro-units.
Settlement = tuple[Ticket, bool, int, int]


def _reset(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60)}s"
    return f"{math.ceil(seconds)}s"


class QuotaService:
    def __init__(
        self,
        limiter: Limiter,
        billing: BillingService,
        db: Database,
        recorder: UsageRecorder,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.limiter = limiter
        self.billing = billing
        self.db = db
        self.recorder = recorder
        self.clock = clock
        self._noticed: set[tuple[str, datetime, str, int]] = set()
        self._tasks: set[asyncio.Task[bool]] = set()
        self._unsettled: list[Settlement] = []
        self._settling = False
        self._rebuilds: SingleFlight[tuple[str, datetime], None] = SingleFlight()

    def allowed_tiers(self, limits: OrgLimits) -> tuple[str, ...]:
        return limits.limits.model_tiers

    def check_model(self, limits: OrgLimits, model: str, tier: str) -> None:
        if tier in limits.limits.model_tiers:
            return
        plans = self.billing.plans_with_tier(tier)
        raise PermissionDenied(
            f"The model '{model}' is not included in the {limits.plan.name} plan; "
            f"it is available on: {', '.join(plans) or 'no plan'}.",
            code="model_not_allowed",
            param="model",
        )

    def _period_keys(self, limits: OrgLimits) -> tuple[str, str, int]:
        stamp = int(limits.period_start.timestamp())
        ttl = max(60, int((limits.period_end - self.clock()).total_seconds()) + 86_400)
        return f"q:{limits.org_id}:{stamp}:m", f"q:{limits.org_id}:{stamp}:s", ttl

    async def admit(
        self,
        ctx: OrgContext,
        *,
        model: str,
        tier: str,
        estimate_tokens: int,
        counts_message: bool,
    ) -> Ticket:
        limits = await self.billing.limits(ctx.org_id)
        self.check_model(limits, model, tier)
        now = self.clock()
        window = int(now.timestamp()) // WINDOW_S
        plan = limits.limits
        actor = ctx.actor
        key_rpm = _lower(actor.rpm_limit, plan.rpm)
        key_tpm = _lower(actor.tpm_limit, plan.tpm)
        counters = [
            Counter(f"rl:{ctx.org_id}:r:{window}", 1, plan.rpm, WINDOW_S + 1),
            Counter(f"rl:{ctx.org_id}:t:{window}", estimate_tokens, plan.tpm, WINDOW_S + 1),
        ]
        if actor.api_key_id is not None:
            counters += [
                Counter(f"rl:{actor.api_key_id}:r:{window}", 1, key_rpm, WINDOW_S + 1),
                Counter(
                    f"rl:{actor.api_key_id}:t:{window}", estimate_tokens, key_tpm, WINDOW_S + 1
                ),
            ]
        message_index = None
        if counts_message:
            message_key, spend_key, ttl = self._period_keys(limits)
            message_index = len(counters)
            cap = limits.spending_cap_micros
            counters += [
                Counter(message_key, 1, limits.message_limit, ttl, must_exist=True),
                # Cost is known only afterwards: refuse once the cap is reached.
                Counter(spend_key, 0, None if cap is None else cap - 1, ttl, must_exist=True),
            ]
        admission = await self.limiter.admit(counters)
        if admission.missing:
            key = (limits.org_id, limits.period_start)
            await self._rebuilds.run(key, lambda: self._rebuild(limits))
            admission = await self.limiter.admit(counters)
        ticket = Ticket(
            ctx.org_id,
            limits,
            counters,
            admission,
            estimate_tokens,
            counts_message,
            message_index,
            key_index=2 if actor.api_key_id is not None else None,
        )
        ticket.headers = self._headers(ticket, key_rpm, key_tpm)
        if not admission.allowed:
            raise self._refusal(ticket, admission.refused or 0)
        if message_index is not None and plan.messages is not None:
            ticket.overage = admission.values[message_index] > plan.messages
        return ticket

    async def _rebuild(self, limits: OrgLimits) -> None:
        """A period counter is missing (restart, Redis flush): count it again from the ledger."""
        message_key, spend_key, ttl = self._period_keys(limits)
        async with self.db.session() as session:
            messages, cost = await repository.period_totals(
                session, limits.org_id, limits.period_start, limits.period_end
            )
        pending_messages, pending_cost = self.recorder.pending_totals(
            limits.org_id, limits.period_start
        )
        await self.limiter.seed(message_key, messages + pending_messages, ttl)
        await self.limiter.seed(spend_key, cost + pending_cost, ttl)
        log.info("quota.rebuilt_from_ledger", org_id=limits.org_id, messages=messages)

    def _refusal(self, ticket: Ticket, index: int) -> ParleyError:
        counter = ticket.counters[index]
        resets = ticket.admission.resets_in_s[index]
        limits = ticket.limits
        if ticket.message_index is not None and index == ticket.message_index:
            until = max(1, int((limits.period_end - self.clock()).total_seconds()))
            own_cap = limits.stops_at_own_cap
            return QuotaExceeded(
                f"The organisation has used all {counter.limit} messages "
                + ("allowed by its own cap" if own_cap else f"of the {limits.plan.name} plan")
                + f" for this period; the quota resets at {limits.period_end.isoformat()}."
                + ("" if own_cap else " Upgrade the plan for more."),
                code="message_cap_reached" if own_cap else "message_quota_exceeded",
                retry_after_s=until,
            )
        if ticket.message_index is not None and index == ticket.message_index + 1:
            until = max(1, int((limits.period_end - self.clock()).total_seconds()))
            return QuotaExceeded(
                f"The organisation reached its spending cap of "
                f"{(limits.spending_cap_micros or 0) / 1_000_000:.2f} USD for this period; "
                f"it resets at {limits.period_end.isoformat()}.",
                code="spending_cap_reached",
                retry_after_s=until,
            )
        what = "requests" if ":r:" in counter.key else "tokens"
        whose = "organisation" if counter.key.startswith(f"rl:{ticket.org_id}:") else "API key"
        error = RateLimited(
            f"Rate limit reached: {counter.limit} {what} per minute for this {whose}. "
            f"Retry in {math.ceil(resets)} s.",
            retry_after_s=math.ceil(resets),
            code="rate_limit_exceeded",
        )
        error.headers.update(ticket.headers)
        return error

    def _headers(self, ticket: Ticket, key_rpm: int | None, key_tpm: int | None) -> dict[str, str]:
        """OpenAI-style x-ratelimit-* from the tightest of the org's and the key's limits."""
        values = ticket.admission.values
        resets = ticket.admission.resets_in_s
        headers: dict[str, str] = {}
        for kind, offset in (("requests", 0), ("tokens", 1)):
            best: tuple[int, int, float] | None = None
            for i in self._rate_indexes(ticket, offset):
                if ticket.counters[i].limit is None:
                    continue
                limit = ticket.counters[i].limit
                assert limit is not None
                remaining = max(0, limit - values[i])
                if best is None or remaining < best[1]:
                    best = (limit, remaining, resets[i])
            if best is not None:
                headers[f"x-ratelimit-limit-{kind}"] = str(best[0])
                headers[f"x-ratelimit-remaining-{kind}"] = str(best[1])
                headers[f"x-ratelimit-reset-{kind}"] = _reset(best[2])
        return headers

    @staticmethod
    def _rate_indexes(ticket: Ticket, offset: int) -> list[int]:
        """The org's and (for an API key) the key's counter: offset 0 requests, 1 tokens."""
        if ticket.key_index is None:
            return [offset]
        return [offset, ticket.key_index + offset]

    async def settle(
        self, ticket: Ticket, *, ok: bool, total_tokens: int, cost_micros: int
    ) -> None:
        """Keep the message when the call succeeded, give it back when it failed."""
        await self._settle_all([(ticket, ok, total_tokens, cost_micros)])

    def _adjustments(
        self, ticket: Ticket, ok: bool, total_tokens: int, cost_micros: int
    ) -> list[Adjustment]:
        """The corrections settling `ticket` makes: the token estimate, and the message
        (kept or given back) and its cost."""
        adjustments = []
        delta = total_tokens - ticket.estimate_tokens
        if delta:
            for i in self._rate_indexes(ticket, 1):
                c = ticket.counters[i]
                adjustments.append(Adjustment(c.key, delta, c.ttl_s))
        if ticket.message_index is not None:
            message, spend = ticket.counters[ticket.message_index : ticket.message_index + 2]
            if not ok:
                adjustments.append(Adjustment(message.key, -1, message.ttl_s))
            if cost_micros:
                adjustments.append(Adjustment(spend.key, cost_micros, spend.ttl_s))
        return adjustments

    async def _settle_all(self, outcomes: list[Settlement]) -> None:
        """One round trip for all of them (at most), then the usage notices."""
        adjustments: list[Adjustment] = []
        kept: list[tuple[Ticket, int]] = []
        for ticket, ok, total_tokens, cost_micros in outcomes:
            if ticket.settled or not ticket.admission.allowed:
                continue
            ticket.settled = True
            adjustments += self._adjustments(ticket, ok, total_tokens, cost_micros)
            if ok and ticket.message_index is not None:
                kept.append((ticket, cost_micros))
        if adjustments:
            await self.limiter.adjust_many(adjustments)
        for ticket, cost_micros in kept:
            self._maybe_notice(ticket, cost_micros)

    def _maybe_notice(self, ticket: Ticket, cost_micros: int) -> None:
        limits = ticket.limits
        assert ticket.message_index is not None
        used = ticket.admission.values[ticket.message_index]
        checks = [("messages", used, limits.limits.messages)]
        if limits.spending_cap_micros:
            spent = ticket.admission.values[ticket.message_index + 1] + cost_micros
            checks.append(("spend", spent, limits.spending_cap_micros))
        for quota, value, limit in checks:
            if not limit:
                continue
            for threshold in NOTICE_THRESHOLDS:
                if value * 100 < limit * threshold:
                    continue
                memo = (limits.org_id, limits.period_start, quota, threshold)
                if memo in self._noticed:
                    continue
                self._noticed.add(memo)
                task = asyncio.create_task(
                    self.billing.record_notice(
                        limits.org_id, limits.period_start, quota, threshold, value, limit
                    )
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def settle_later(
        self, ticket: Ticket, *, ok: bool, total_tokens: int, cost_micros: int
    ) -> None:
        """Settle off the request path: what ends while a batch is being settled waits for
        the next one, so there is one task at a time rather than one per request.
        Shutdown drains what is still running."""
        self._unsettled.append((ticket, ok, total_tokens, cost_micros))
        if not self._settling:
            self._settling = True
            task = asyncio.create_task(self._settle_pending())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _settle_pending(self) -> bool:
        try:
            while self._unsettled:
                batch, self._unsettled = self._unsettled, []
                try:
                    await self._settle_all(batch)
                except Exception:
                    orgs = sorted({ticket.org_id for ticket, *_ in batch})
                    log.exception("quota.settle_failed", org_ids=orgs)
        finally:
            self._settling = False
        return True

    async def drain(self) -> None:
        # A settlement may start a notice while we wait: drain until nothing is left.
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)


def _lower(own: int | None, plan: int | None) -> int | None:
    if own is None:
        return plan
    return own if plan is None else min(own, plan)
