from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class AuditEventOut(BaseModel):
    object: Literal["audit_event"] = "audit_event"
    id: str
    action: str
    actor_type: str
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    ip: str | None
    details: dict[str, Any]
    created_at: datetime
