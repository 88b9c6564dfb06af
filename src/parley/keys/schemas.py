from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from parley.orgs.roles import Scope


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.INFERENCE],
        min_length=1,
        description="What the key may be used for.",
    )
    rpm_limit: int | None = Field(
        default=None, ge=1, description="Requests per minute for this key (below the plan's)."
    )
    tpm_limit: int | None = Field(
        default=None, ge=1, description="Tokens per minute for this key (below the plan's)."
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (ISO 8601 with a time zone)."
    )


class KeyOut(BaseModel):
    object: Literal["api_key"] = "api_key"
    id: str
    org_id: str
    name: str
    prefix: str = Field(description="The start of the secret, to recognise the key by.")
    scopes: list[Scope]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    revoked_at: datetime | None


class CreatedKeyOut(KeyOut):
    key: str = Field(description="The secret. It is shown only now; store it safely.")
