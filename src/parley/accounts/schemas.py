from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field(default="", max_length=200)
    org_name: str | None = Field(
        default=None, max_length=200, description="Name of the personal organisation."
    )


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="The refresh token; when absent, the `parley_refresh` cookie is used "
        "(browsers: it is set by login, register and refresh, httpOnly and SameSite=Strict).",
    )


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UpdateProfileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    default_org_id: str | None = Field(
        default=None, description="Organisation used when no Parley-Organization header is sent."
    )


class UserOut(BaseModel):
    object: Literal["user"] = "user"
    id: str
    email: str
    name: str
    default_org_id: str | None
    created_at: datetime


class TokenResponse(BaseModel):
    """OAuth2-style token response."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    refresh_token_expires_in: int
    user: UserOut
