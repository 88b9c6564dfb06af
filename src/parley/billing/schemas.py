from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.billing.plans import Plan, PlanLimits


class PlanLimitsOut(BaseModel):
    messages_per_period: int | None = Field(description="None: unlimited.")
    requests_per_minute: int | None
    tokens_per_minute: int | None
    seats: int | None
    storage_mb: int | None
    model_tiers: list[str]
    priority_routing: bool
    overage: bool = Field(
        description="Whether requests continue past the quota, billed per message."
    )


class PlanOut(BaseModel):
    object: Literal["plan"] = "plan"
    id: str
    name: str
    currency: str
    monthly_price_micros: int
    annual_price_micros: int
    overage_price_micros_per_message: int
    limits: PlanLimitsOut


class SubscriptionOut(BaseModel):
    object: Literal["subscription"] = "subscription"
    org_id: str
    plan: PlanOut
    interval: Literal["month", "year"]
    status: str
    current_period_start: datetime
    current_period_end: datetime
    limits: PlanLimitsOut = Field(description="The plan's limits with this org's custom values.")
    message_cap: int | None
    spending_cap_micros: int | None


class UpdateCapsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_cap: int | None = Field(
        default=None,
        ge=0,
        description="Stop at this many messages per period (no overage past it).",
    )
    spending_cap_micros: int | None = Field(
        default=None,
        ge=0,
        description="Stop when the period's token cost reaches this (micro-USD).",
    )


class SetPlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str
    interval: Literal["month", "year"] | None = None
    messages: int | None = Field(default=None, ge=0)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    seats: int | None = Field(default=None, ge=1)
    storage_mb: int | None = Field(default=None, ge=0)


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        name=plan.name,
        currency=plan.currency,
        monthly_price_micros=plan.monthly_micros,
        annual_price_micros=plan.annual_micros,
        overage_price_micros_per_message=plan.overage_micros_per_message,
        limits=limits_out(plan.limits),
    )


def limits_out(limits: PlanLimits) -> PlanLimitsOut:
    return PlanLimitsOut(
        messages_per_period=limits.messages,
        requests_per_minute=limits.rpm,
        tokens_per_minute=limits.tpm,
        seats=limits.seats,
        storage_mb=limits.storage_mb,
        model_tiers=list(limits.model_tiers),
        priority_routing=limits.priority_routing,
        overage=limits.overage,
    )
