"""Records and reads audit events; the record joins the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import repository
from parley.audit.actions import AuditAction
from parley.audit.models import AuditEvent
from parley.kit.clock import utcnow
from parley.kit.ids import new_id
from parley.principal import Actor, OrgContext


def record(
    session: AsyncSession,
    action: AuditAction,
    *,
    org_ids: Iterable[str | None],
    actor: Actor | None,
    ip: str | None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One event per organisation concerned (a user's login concerns each of their orgs)."""
    now = utcnow()
    for org_id in org_ids:
        session.add(
            AuditEvent(
                id=new_id("aud"),
                org_id=org_id,
                actor_type=actor.kind if actor else "anonymous",
                actor_id=actor.id if actor else None,
                action=action.value,
                target_type=target_type,
                target_id=target_id,
                ip=ip,
                details=details or {},
                created_at=now,
            )
        )


def record_in(
    session: AsyncSession,
    org: OrgContext,
    action: AuditAction,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    record(
        session,
        action,
        org_ids=[org.org_id],
        actor=org.actor,
        ip=org.ip,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )


async def list_events(
    session: AsyncSession, org_id: str, *, action: str | None, limit: int, after: str | None
) -> tuple[Sequence[AuditEvent], bool]:
    return await repository.list_events(session, org_id, action=action, limit=limit, after=after)
