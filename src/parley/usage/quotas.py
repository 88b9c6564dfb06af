"""Quotas and rate limits, enforced atomically before the provider is called.

One admission checks (and takes) everything at once: requests and tokens per minute for
the organisation and the API key, the period's messages (a request with `n` choices takes
`n`) and the spending cap. It costs one Redis round trip (or none in-process). After the
call, settlement keeps the messages that were served, gives back the rest, adds the cost,
and corrects the token estimate.

When the shared counters (Redis) cannot be reached, requests that need the period's quotas
are refused with a 503 (`quota_backend_unavailable`) rather than counted per process, and
the counters that missed a settlement meanwhile are rebuilt from the usage ledger once
Redis answers again.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.backends.limits import Adjustment, Admission, BackendUnavailable, Counter, Limiter
from parley.billing.service import BillingService, OrgLimits
from parley.db.engine import Database
from parley.errors import ParleyError, PermissionDenied, RateLimited, ServiceUnavailable
from parley.kit.clock import Clock, utcnow
from parley.kit.singleflight import SingleFlight
from parley.principal import OrgContext
from parley.usage.recorder import UsageRecorder

log = structlog.get_logger("parley.quotas")

WINDOW_S = 60
NOTICE_THRESHOLDS = (80, 100)
BACKEND_RETRY_S = 5

Period = tuple[str, datetime]  # an organisation and the start of its billing period


class QuotaExceeded(ParleyError):
    status = 429
    type = "quota_exceeded"
    default_code = "quota_exceeded"

    def __init__(self, message: str, *, code: str, retry_after_s: int) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after_s))})


def backend_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Usage quotas cannot be checked right now (the shared counter store is unreachable), "
        f"so no message is served; retry in {BACKEND_RETRY_S} s.",
        code="quota_backend_unavailable",
        headers={"Retry-After": str(BACKEND_RETRY_S)},
    )


@dataclass
class Ticket:
    """What an admitted request took, to settle after the call."""

    org_id: str
    limits: OrgLimits
    counters: list[Counter]
    admission: Admission
    estimate_tokens: int
    messages: int  # messages taken from the period's quota (0: not a message call)
    message_index: int | None = None  # the period's message counter, when messages > 0
    spend_index: int | None = None  # the period's spending counter, when checked
    key_index: int | None = None  # where the API key's requests and tokens counters start
    ended: bool = False
    settled: bool = False
    epoch: int = 0  # of the period's counters in this process, when the call ended
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def period(self) -> Period:
        return self.org_id, self.limits.period_start

    def overage(self, served: int) -> int:
        """How many of the `served` messages fall beyond the plan's quota."""
        plan = self.limits.limits.messages
        if plan is None or self.message_index is None:
            return 0
        before = self.admission.values[self.message_index] - self.messages
        return max(0, served - max(0, plan - before))


# A ticket and how its call ended: messages served, total tokens, cost in micro-units.
Settlement = tuple[Ticket, int, int, int]


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
        self._rebuilds: SingleFlight[Period, None] = SingleFlight()
        # Messages admitted here whose calls have not ended: a rebuild counts them too.
        self._reserved: dict[Period, int] = defaultdict(int)
        # Bumped by each rebuild: settlements of calls that ended before it are in the ledger
        # it read, so their corrections must not be applied to the rebuilt counters again.
        self._epochs: dict[Period, int] = defaultdict(int)
        # Periods whose shared counters missed a correction while Redis was unreachable.
        self._stale: set[Period] = set()

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

    async def require_model(
        self, org: OrgContext, model: str, tier: str, session: AsyncSession | None = None
    ) -> None:
        """The same refusal as admission gives, for a model chosen ahead of any call (in the
        caller's transaction when it has one: on SQLite a second one would wait for it)."""
        if session is None:
            limits = await self.billing.limits(org.org_id)
        else:
            limits = await self.billing.limits_in(session, org.org_id)
        self.check_model(limits, model, tier)

    def _period_keys(self, limits: OrgLimits) -> tuple[str, str, int]:
        stamp = int(limits.period_start.timestamp())
        ttl = max(60, int((limits.period_end - self.clock()).total_seconds()) + 86_400)
        return f"q:{limits.org_id}:{stamp}:m", f"q:{limits.org_id}:{stamp}:s", ttl

    async def admit(
        self,
        org: OrgContext,
        *,
        model: str,
        tier: str,
        estimate_tokens: int,
        messages: int,
    ) -> Ticket:
        """Take the request's share of every limit: `messages` of the period's quota (0 for
        calls that are not messages, such as embeddings and conversation summaries)."""
        limits = await self.billing.limits(org.org_id)
        self.check_model(limits, model, tier)
        if self._stale:
            await self._resync()
        now = self.clock()
        window = int(now.timestamp()) // WINDOW_S
        plan = limits.limits
        actor = org.actor
        key_rpm = _lower(actor.rpm_limit, plan.rpm)
        key_tpm = _lower(actor.tpm_limit, plan.tpm)
        counters = [
            Counter(f"rl:{org.org_id}:r:{window}", 1, plan.rpm, WINDOW_S + 1),
            Counter(f"rl:{org.org_id}:t:{window}", estimate_tokens, plan.tpm, WINDOW_S + 1),
        ]
        key_index = None
        if actor.api_key_id is not None:
            key_index = len(counters)
            counters += [
                Counter(f"rl:{actor.api_key_id}:r:{window}", 1, key_rpm, WINDOW_S + 1),
                Counter(
                    f"rl:{actor.api_key_id}:t:{window}", estimate_tokens, key_tpm, WINDOW_S + 1
                ),
            ]
        message_key, spend_key, ttl = self._period_keys(limits)
        message_index = spend_index = None
        if messages:
            message_index = len(counters)
            counters.append(Counter(message_key, messages, limits.message_limit, ttl, True))
        cap = limits.spending_cap_micros
        if messages or cap is not None:
            # Cost is known only afterwards: refuse once the cap is reached.
            spend_index = len(counters)
            counters.append(Counter(spend_key, 0, None if cap is None else cap - 1, ttl, True))
        try:
            admission = await self.limiter.admit(counters)
            if admission.missing:
                period = (limits.org_id, limits.period_start)
                await self._rebuilds.run(period, lambda: self._rebuild(limits))
                admission = await self.limiter.admit(counters)
        except BackendUnavailable as exc:
            raise backend_unavailable() from exc
        ticket = Ticket(
            org.org_id,
            limits,
            counters,
            admission,
            estimate_tokens,
            messages,
            message_index,
            spend_index,
            key_index,
        )
        ticket.headers = self._headers(ticket)
        if not admission.allowed:
            ticket.ended = ticket.settled = True  # nothing was taken
            raise self._refusal(ticket, admission.refused or 0)
        if messages:
            self._reserved[ticket.period] += messages
        return ticket

    async def _rebuild(self, limits: OrgLimits) -> None:
        """A period counter is missing (restart, Redis flushed or restarted): count it again
        from the ledger, the events not yet written, and the calls still running here."""
        message_key, spend_key, ttl = self._period_keys(limits)
        period = (limits.org_id, limits.period_start)
        async with self.db.read_session() as session:
            messages, cost = await self.recorder.period_totals(
                session, limits.org_id, limits.period_start, limits.period_end
            )
            # Read at the same instant as the buffer (nothing awaits in between): a call
            # that ends from now on is settled against the rebuilt counters.
            messages += self._reserved[period]
            self._epochs[period] += 1
        await self.limiter.seed(message_key, messages, ttl)
        await self.limiter.seed(spend_key, cost, ttl)
        log.info("quota.rebuilt_from_ledger", org_id=limits.org_id, messages=messages)

    async def _resync(self) -> None:
        """Redis missed corrections while it was away: once it answers, drop those periods'
        counters so that the next admission rebuilds them from the ledger."""
        stale, self._stale = self._stale, set()
        await self.recorder.flush()
        keys = []
        for org_id, start in stale:
            stamp = int(start.timestamp())
            keys += [f"q:{org_id}:{stamp}:m", f"q:{org_id}:{stamp}:s"]
        try:
            await self.limiter.forget(keys)
        except BackendUnavailable:
            self._stale |= stale
            return
        log.warning("quota.counters_resynced_from_ledger", periods=len(stale))

    def _refusal(self, ticket: Ticket, index: int) -> ParleyError:
        counter = ticket.counters[index]
        resets = ticket.admission.resets_in_s[index]
        limits = ticket.limits
        if index == ticket.message_index:
            until = max(1, int((limits.period_end - self.clock()).total_seconds()))
            own_cap = limits.stops_at_own_cap
            left = max(0, (counter.limit or 0) - ticket.admission.values[index])
            whose = "allowed by its own cap" if own_cap else f"of the {limits.plan.name} plan"
            used = (
                f"The organisation has used all {counter.limit} messages {whose}"
                if not left
                else f"This request asks for {counter.cost} messages, but only {left} of the "
                f"{counter.limit} messages {whose} are left"
            )
            return QuotaExceeded(
                used
                + f" for this period; the quota resets at {limits.period_end.isoformat()}."
                + ("" if own_cap else " Upgrade the plan for more."),
                code="message_cap_reached" if own_cap else "message_quota_exceeded",
                retry_after_s=until,
            )
        if index == ticket.spend_index:
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

    def _headers(self, ticket: Ticket) -> dict[str, str]:
        """OpenAI-style x-ratelimit-* from the tightest of the org's and the key's limits."""
        values = ticket.admission.values
        resets = ticket.admission.resets_in_s
        headers: dict[str, str] = {}
        for kind, offset in (("requests", 0), ("tokens", 1)):
            best: tuple[int, int, float] | None = None
            for i in self._rate_indexes(ticket, offset):
                limit = ticket.counters[i].limit
                if limit is None:
                    continue
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

    def _adjustments(
        self, ticket: Ticket, served: int, total_tokens: int, cost_micros: int
    ) -> list[Adjustment]:
        """The corrections settling `ticket` makes: the token estimate, the messages not
        served (given back) and the cost."""
        adjustments = []
        delta = total_tokens - ticket.estimate_tokens
        if delta:
            for i in self._rate_indexes(ticket, 1):
                c = ticket.counters[i]
                adjustments.append(Adjustment(c.key, delta, c.ttl_s))
        if ticket.epoch != self._epochs[ticket.period]:
            return adjustments  # the period's counters were rebuilt with this call in them
        message_key, spend_key, ttl = self._period_keys(ticket.limits)
        if ticket.messages > served:
            adjustments.append(Adjustment(message_key, served - ticket.messages, ttl, False))
        if cost_micros:
            adjustments.append(Adjustment(spend_key, cost_micros, ttl, False))
        return adjustments

    async def settle(
        self, ticket: Ticket, *, served: int, total_tokens: int, cost_micros: int
    ) -> None:
        """Keep the messages served, give back the rest, add the cost."""
        self._ended(ticket)
        await self._settle_all([(ticket, served, total_tokens, cost_micros)])

    def _ended(self, ticket: Ticket) -> None:
        """The call is over: from now on the ledger (or the recorder's buffer) holds it."""
        if ticket.ended:
            return
        ticket.ended = True
        if ticket.messages:
            self._reserved[ticket.period] -= ticket.messages
        ticket.epoch = self._epochs[ticket.period]

    async def _settle_all(self, outcomes: list[Settlement]) -> None:
        """One round trip for all of them (at most), then the usage notices."""
        adjustments: list[Adjustment] = []
        kept: list[tuple[Ticket, int, int]] = []
        periods: set[Period] = set()
        for ticket, served, total_tokens, cost_micros in outcomes:
            if ticket.settled:
                continue
            ticket.settled = True
            adjustments += self._adjustments(ticket, served, total_tokens, cost_micros)
            periods.add(ticket.period)
            if served and ticket.message_index is not None:
                kept.append((ticket, served, cost_micros))
        if adjustments:
            try:
                await self.limiter.adjust_many(adjustments)
            except BackendUnavailable:
                self._stale |= periods
                log.warning("quota.settlement_deferred_to_rebuild", periods=len(periods))
        for ticket, served, cost_micros in kept:
            self._maybe_notice(ticket, served, cost_micros)

    def _maybe_notice(self, ticket: Ticket, served: int, cost_micros: int) -> None:
        limits = ticket.limits
        assert ticket.message_index is not None
        used = ticket.admission.values[ticket.message_index] - ticket.messages + served
        checks = [("messages", used, limits.limits.messages)]
        if limits.spending_cap_micros and ticket.spend_index is not None:
            spent = ticket.admission.values[ticket.spend_index] + cost_micros
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
        self, ticket: Ticket, *, served: int, total_tokens: int, cost_micros: int
    ) -> None:
        """Settle off the request path: what ends while a batch is being settled waits for
        the next one, so there is one task at a time rather than one per request.
        Shutdown drains what is still running."""
        if ticket.ended:
            return
        self._ended(ticket)
        self._unsettled.append((ticket, served, total_tokens, cost_micros))
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
