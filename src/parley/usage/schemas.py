from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class QuotaOut(BaseModel):
    used: int
    limit: int | None = Field(description="None: unlimited.")
    remaining: int | None
    overage: int = Field(default=0, description="Used past the plan's quota (billed per unit).")


class UsageSummaryOut(BaseModel):
    object: Literal["usage.summary"] = "usage.summary"
    org_id: str
    plan: str
    period_start: datetime
    period_end: datetime
    messages: QuotaOut
    spend_micros: QuotaOut = Field(description="Token cost so far against the spending cap.")
    storage_bytes: QuotaOut
    seats: QuotaOut
    cost_micros: int
    currency: str = "USD"


class UsageRowOut(BaseModel):
    group: str | None
    requests: int
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    overage_messages: int


class UsageReportOut(BaseModel):
    object: Literal["usage.report"] = "usage.report"
    group_by: Literal["day", "model", "api_key", "user"]
    start: datetime
    end: datetime
    data: list[UsageRowOut]
