"""Route: /v1/orgs/{org_id}/audit-log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from parley.audit import service
from parley.audit.actions import AuditAction
from parley.audit.models import AuditEvent
from parley.audit.schemas import AuditEventOut
from parley.http.deps import DbSession, OrgFromPath
from parley.http.errors import error_responses
from parley.kit.pagination import Page, PageParams, page_params
from parley.orgs.roles import Action

router = APIRouter(prefix="/v1/orgs", tags=["audit"])


def event_out(e: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=e.id,
        action=e.action,
        actor_type=e.actor_type,
        actor_id=e.actor_id,
        target_type=e.target_type,
        target_id=e.target_id,
        ip=e.ip,
        details=e.details,
        created_at=e.created_at,
    )


@router.get(
    "/{org_id}/audit-log",
    responses=error_responses(401, 403, 404, 422),
    summary="Security-relevant actions in the organisation, newest first",
)
async def audit_log(
    org: OrgFromPath,
    session: DbSession,
    paging: Annotated[PageParams, Depends(page_params)],
    action: Annotated[AuditAction | None, Query(description="Only this action.")] = None,
) -> Page[AuditEventOut]:
    org.require(Action.AUDIT_READ)
    rows, has_more = await service.list_events(
        session, org.org_id, action=action, limit=paging.limit, after=paging.after
    )
    return Page.build(rows, has_more, event_out)
