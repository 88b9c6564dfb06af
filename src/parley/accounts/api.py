"""Routes: /v1/auth/* and /v1/users/me."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from parley.accounts.models import User
from parley.accounts.schemas import (
    ChangePasswordRequest,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UpdateProfileRequest,
    UserOut,
)
from parley.accounts.service import Session
from parley.http.deps import Client, Ctx, CurrentUser, DbSession
from parley.http.errors import error_responses

auth = APIRouter(prefix="/v1/auth", tags=["auth"])
users = APIRouter(prefix="/v1/users", tags=["users"])


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        default_org_id=user.default_org_id,
        created_at=user.created_at,
    )


def token_response(s: Session) -> TokenResponse:
    return TokenResponse(
        access_token=s.access_token,
        expires_in=s.access_expires_in,
        refresh_token=s.refresh_token,
        refresh_token_expires_in=s.refresh_expires_in,
        user=user_out(s.user),
    )


@auth.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 409, 413, 422),
    summary="Create an account (and its personal organisation)",
)
async def register(
    body: RegisterRequest, ctx: Ctx, session: DbSession, client: Client
) -> TokenResponse:
    result = await ctx.accounts.register(
        session,
        email=body.email,
        password=body.password,
        name=body.name,
        org_name=body.org_name,
        client=client,
    )
    return token_response(result)


@auth.post("/login", responses=error_responses(401, 413, 422, 429), summary="Log in")
async def login(body: LoginRequest, ctx: Ctx, session: DbSession, client: Client) -> TokenResponse:
    result = await ctx.accounts.login(
        session, email=body.email, password=body.password, client=client
    )
    return token_response(result)


@auth.post(
    "/refresh",
    responses=error_responses(401, 422),
    summary="Swap a refresh token for a new pair (the old one stops working)",
)
async def refresh(
    body: RefreshRequest, ctx: Ctx, session: DbSession, client: Client
) -> TokenResponse:
    result = await ctx.accounts.refresh(session, refresh_token=body.refresh_token, client=client)
    return token_response(result)


@auth.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(422),
    summary="End the session the refresh token belongs to",
)
async def logout(body: RefreshRequest, ctx: Ctx, session: DbSession, client: Client) -> Response:
    await ctx.accounts.logout(session, refresh_token=body.refresh_token, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users.get("/me", responses=error_responses(401, 403), summary="Your profile")
async def get_me(user: CurrentUser) -> UserOut:
    return user_out(user)


@users.patch("/me", responses=error_responses(401, 403, 404, 422), summary="Update your profile")
async def update_me(
    body: UpdateProfileRequest, user: CurrentUser, ctx: Ctx, session: DbSession
) -> UserOut:
    updated = await ctx.accounts.update_profile(
        session, user, name=body.name, default_org_id=body.default_org_id
    )
    return user_out(updated)


@users.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 401, 403, 422),
    summary="Change your password (ends your other sessions)",
)
async def change_password(
    body: ChangePasswordRequest, user: CurrentUser, ctx: Ctx, session: DbSession, client: Client
) -> Response:
    await ctx.accounts.change_password(
        session,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        client=client,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
