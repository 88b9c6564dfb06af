"""Routes: /v1/usage/summary and /v1/usage (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime
from starlette.responses import Response

from parley.http.deps import App, DbSession, OrgFromHeader
from parley.http.errors import error_responses
from parley.usage.schemas import UsageReportOut, UsageSummaryOut

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get(
    "/summary",
    responses=error_responses(401, 403, 404),
    summary="This period: used, limit, remaining and overage per quota, and the cost so far",
)
async def usage_summary(org: OrgFromHeader, app: App, session: DbSession) -> UsageSummaryOut:
    return await app.usage_reports.summary(session, org)


@router.get(
    "",
    response_model=UsageReportOut,
    responses={
        **error_responses(400, 401, 403, 404, 422),
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"},
    },
    summary="Usage over time or broken down by model, API key or user",
)
async def usage_report(
    org: OrgFromHeader,
    app: App,
    session: DbSession,
    group_by: Annotated[Literal["day", "model", "api_key", "user"], Query()] = "day",
    start: Annotated[AwareDatetime | None, Query(description="Default: period start.")] = None,
    end: Annotated[AwareDatetime | None, Query(description="Default: period end.")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> UsageReportOut | Response:
    report = await app.usage_reports.report(session, org, group_by=group_by, start=start, end=end)
    if format == "json":
        return report
    out = io.StringIO()
    writer = csv.writer(out)
    columns = (
        list(report.data[0].model_dump())
        if report.data
        else [
            "group",
            "requests",
            "messages",
            "prompt_tokens",
            "completion_tokens",
            "cost_micros",
            "overage_messages",
        ]
    )
    writer.writerow([group_by if c == "group" else c for c in columns])
    for row in report.data:
        writer.writerow([getattr(row, c) for c in columns])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="usage-{group_by}.csv"'},
    )
