"""Routes: /v1/billing/plans, /v1/billing/subscription, and the operator's plan changes."""

from __future__ import annotations

from fastapi import APIRouter

from parley.billing.models import Subscription
from parley.billing.schemas import (
    PlanOut,
    SetPlanRequest,
    SubscriptionOut,
    UpdateCapsRequest,
    limits_out,
    plan_out,
)
from parley.billing.service import BillingService
from parley.errors import NotFound
from parley.http.deps import App, CurrentOperator, DbSession, OrgFromHeader
from parley.http.errors import error_responses
from parley.kit.pagination import Page
from parley.orgs.roles import Action

router = APIRouter(prefix="/v1/billing", tags=["billing"])
admin = APIRouter(prefix="/v1/admin", tags=["operator"])


def subscription_out(billing: BillingService, sub: Subscription) -> SubscriptionOut:
    plan = billing.plan(sub.plan_id)
    period_start, period_end = billing.period(sub)
    return SubscriptionOut(
        org_id=sub.org_id,
        plan=plan_out(plan),
        interval=sub.interval,
        status=sub.status,
        current_period_start=period_start,
        current_period_end=period_end,
        limits=limits_out(plan.limits.with_overrides(sub.custom_limits or {})),
        message_cap=sub.message_cap,
        spending_cap_micros=sub.spending_cap_micros,
    )


@router.get(
    "/plans",
    responses=error_responses(503),
    summary="The plans on offer, with prices and limits (no credentials needed)",
)
async def list_plans(app: App) -> Page[PlanOut]:
    await app.billing.ensure_plans()
    plans = sorted(app.billing.plans.values(), key=lambda p: p.sort_order)
    return Page.build(plans, False, plan_out)


@router.get(
    "/subscription",
    responses=error_responses(401, 403, 404),
    summary="Your organisation's plan, period and limits",
)
async def get_subscription(org: OrgFromHeader, app: App, session: DbSession) -> SubscriptionOut:
    org.require(Action.ORG_READ)
    await app.billing.ensure_plans()
    return subscription_out(app.billing, await app.billing.current(session, org.org_id))


@router.patch(
    "/subscription",
    responses=error_responses(401, 403, 404, 422),
    summary="Set the organisation's own message cap and spending cap (admins)",
)
async def update_caps(
    body: UpdateCapsRequest, org: OrgFromHeader, app: App, session: DbSession
) -> SubscriptionOut:
    org.require(Action.ORG_UPDATE)
    # PATCH: a cap left out of the body stays as it is; null removes it.
    current = await app.billing.subscription(session, org.org_id)
    given = body.model_fields_set
    sub = await app.billing.set_caps(
        session,
        org.org_id,
        message_cap=body.message_cap if "message_cap" in given else current.message_cap,
        spending_cap_micros=(
            body.spending_cap_micros
            if "spending_cap_micros" in given
            else current.spending_cap_micros
        ),
    )
    return subscription_out(app.billing, sub)


@admin.put(
    "/orgs/{org_id}/subscription",
    responses=error_responses(401, 403, 404, 422),
    summary="Put an organisation on a plan (platform operators)",
)
async def set_plan(
    org_id: str, body: SetPlanRequest, _operator: CurrentOperator, app: App, session: DbSession
) -> SubscriptionOut:
    if await app.orgs.find(session, org_id) is None:
        raise NotFound(f"No organisation {org_id}.", code="org_not_found")
    custom = body.model_dump(include={"messages", "rpm", "tpm", "seats", "storage_mb"})
    sub = await app.billing.set_plan(
        session, org_id, body.plan, interval=body.interval, custom=custom
    )
    return subscription_out(app.billing, sub)
