"""Plans as the code sees them: the seeded rows, with the config file's overrides applied."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from parley.billing.models import PlanRow

LIMIT_FIELDS = ("messages", "rpm", "tpm", "seats", "storage_mb")


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """What a subscription allows; None means unlimited."""

    messages: int | None
    rpm: int | None
    tpm: int | None
    seats: int | None
    storage_mb: int | None
    model_tiers: tuple[str, ...]
    priority_routing: bool
    overage: bool  # paid plans continue past the message quota, billed per message

    def with_overrides(self, overrides: dict[str, Any]) -> PlanLimits:
        return replace(self, **{k: v for k, v in overrides.items() if k in LIMIT_FIELDS})


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    monthly_micros: int
    annual_micros: int
    currency: str
    overage_micros_per_message: int
    limits: PlanLimits
    sort_order: int


def plan_from_row(row: PlanRow, overrides: dict[str, Any] | None = None) -> Plan:
    overrides = overrides or {}
    limits = PlanLimits(
        messages=row.messages,
        rpm=row.rpm,
        tpm=row.tpm,
        seats=row.seats,
        storage_mb=row.storage_mb,
        model_tiers=tuple(overrides.get("model_tiers", row.model_tiers)),
        priority_routing=bool(overrides.get("priority_routing", row.priority_routing)),
        overage=bool(overrides.get("overage", row.overage)),
    ).with_overrides(overrides)
    return Plan(
        id=row.id,
        name=str(overrides.get("name", row.name)),
        monthly_micros=int(overrides.get("monthly_micros", row.monthly_micros)),
        annual_micros=int(overrides.get("annual_micros", row.annual_micros)),
        currency=row.currency,
        overage_micros_per_message=int(
            overrides.get("overage_micros_per_message", row.overage_micros_per_message)
        ),
        limits=limits,
        sort_order=row.sort_order,
    )
