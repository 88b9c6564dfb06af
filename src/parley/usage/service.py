"""Usage reports for an organisation: the period summary and breakdowns from the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from parley.billing.service import BillingService
from parley.errors import InvalidRequest
from parley.kit.clock import Clock, utcnow
from parley.orgs.roles import Action
from parley.orgs.service import OrgService
from parley.principal import OrgContext
from parley.usage import repository
from parley.usage.recorder import UsageRecorder
from parley.usage.schemas import QuotaOut, UsageReportOut, UsageRowOut, UsageSummaryOut

MAX_RANGE = timedelta(days=400)


def _quota(used: int, limit: int | None, *, plan_limit: int | None = None) -> QuotaOut:
    base = plan_limit if plan_limit is not None else limit
    return QuotaOut(
        used=used,
        limit=limit,
        remaining=None if limit is None else max(0, limit - used),
        overage=0 if base is None else max(0, used - base),
    )


class UsageReports:
    def __init__(
        self,
        billing: BillingService,
        orgs: OrgService,
        recorder: UsageRecorder,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.billing = billing
        self.orgs = orgs
        self.recorder = recorder
        self.clock = clock

    async def summary(self, session: AsyncSession, org: OrgContext) -> UsageSummaryOut:
        org.require(Action.USAGE_READ)
        limits = await self.billing.limits_in(session, org.org_id)
        messages, cost = await self.recorder.period_totals(
            session, org.org_id, limits.period_start, limits.period_end
        )
        plan = limits.limits
        message_limit = plan.messages if limits.message_limit is None else limits.message_limit
        storage_limit = None if plan.storage_mb is None else plan.storage_mb * 1024 * 1024
        seats_used = await self.orgs.member_count(session, org.org_id)
        return UsageSummaryOut(
            org_id=org.org_id,
            plan=limits.plan.id,
            period_start=limits.period_start,
            period_end=limits.period_end,
            messages=_quota(messages, message_limit, plan_limit=plan.messages),
            spend_micros=_quota(cost, limits.spending_cap_micros),
            storage_bytes=_quota(limits.storage_used_bytes, storage_limit),
            seats=_quota(seats_used, plan.seats),
            cost_micros=cost,
        )

    async def report(
        self,
        session: AsyncSession,
        org: OrgContext,
        *,
        group_by: str,
        start: datetime | None,
        end: datetime | None,
    ) -> UsageReportOut:
        org.require(Action.USAGE_READ)
        if start is None or end is None:
            limits = await self.billing.limits_in(session, org.org_id)
            start = start or limits.period_start
            end = end or limits.period_end
        if end <= start:
            raise InvalidRequest("end must be after start.", param="end")
        if end - start > MAX_RANGE:
            raise InvalidRequest("Ask for at most 400 days at a time.", param="start")
        rows = await repository.report(session, org.org_id, group_by=group_by, start=start, end=end)
        return UsageReportOut(
            group_by=group_by,
            start=start,
            end=end,
            data=[
                UsageRowOut(
                    group=row.group,
                    requests=row.requests,
                    messages=row.messages,
                    prompt_tokens=row.prompt_tokens,
                    completion_tokens=row.completion_tokens,
                    cost_micros=row.cost_micros,
                    overage_messages=row.overage_messages,
                )
                for row in rows
            ],
        )
