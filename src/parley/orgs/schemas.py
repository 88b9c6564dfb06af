from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from parley.orgs.roles import Role


class CreateOrgRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class UpdateOrgRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class OrgOut(BaseModel):
    object: Literal["organization"] = "organization"
    id: str
    name: str
    personal: bool
    role: Role | None = Field(description="Your role in it (absent for API keys).")
    created_at: datetime


class MemberOut(BaseModel):
    object: Literal["organization.member"] = "organization.member"
    id: str = Field(description="Membership id.")
    user_id: str
    email: str
    name: str
    role: Role
    joined_at: datetime


class ChangeRoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class CreateInvitationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    role: Role = Role.MEMBER


class InvitationOut(BaseModel):
    object: Literal["organization.invitation"] = "organization.invitation"
    id: str
    org_id: str
    email: str
    role: Role
    status: Literal["pending", "accepted", "declined", "revoked", "expired"]
    invited_by: str | None
    created_at: datetime
    expires_at: datetime


class CreatedInvitationOut(InvitationOut):
    url: str = Field(description="The link sent by email; share it yourself if you prefer.")
    token: str = Field(description="The single-use token inside the link. Shown only now.")


class InvitationTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class AcceptedInvitationOut(BaseModel):
    organization: OrgOut
