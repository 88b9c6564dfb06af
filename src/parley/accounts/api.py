"""Routes: /v1/auth/* and /v1/users/me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

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
from parley.config import Settings
from parley.errors import AuthenticationFailed
from parley.http.deps import App, Client, CurrentUser, DbSession
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


# Browsers keep the refresh token in this cookie, out of reach of scripts: httpOnly,
# SameSite=Strict, Secure over https, and sent only to /v1/auth/*. The JSON bodies still
# carry the token for scripts and SDKs.
REFRESH_COOKIE = "parley_refresh"
REFRESH_COOKIE_PATH = "/v1/auth"

OptionalRefresh = Annotated[RefreshRequest | None, Body()]


def _secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.serves_https


def set_refresh_cookie(
    response: Response, request: Request, settings: Settings, s: Session
) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        s.refresh_token,
        max_age=s.refresh_expires_in,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
    )


def clear_refresh_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
    )


def presented_refresh_token(body: RefreshRequest | None, request: Request) -> str | None:
    """The body's refresh token, else the cookie's."""
    if body is not None and body.refresh_token is not None:
        return body.refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    return cookie if cookie and len(cookie) <= 512 else None


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
    responses=error_responses(400, 409, 413, 422, 429),
    summary="Create an account (and its personal organisation)",
)
async def register(
    body: RegisterRequest,
    app: App,
    session: DbSession,
    client: Client,
    request: Request,
    response: Response,
) -> TokenResponse:
    result = await app.signup.register(
        session,
        email=body.email,
        password=body.password,
        name=body.name,
        org_name=body.org_name,
        client=client,
    )
    set_refresh_cookie(response, request, app.settings, result)
    return token_response(result)


@auth.post("/login", responses=error_responses(401, 413, 422, 429), summary="Log in")
async def login(
    body: LoginRequest,
    app: App,
    session: DbSession,
    client: Client,
    request: Request,
    response: Response,
) -> TokenResponse:
    result = await app.accounts.login(
        session, email=body.email, password=body.password, client=client
    )
    set_refresh_cookie(response, request, app.settings, result)
    return token_response(result)


@auth.post(
    "/refresh",
    responses=error_responses(401, 422),
    summary="Swap a refresh token (body or cookie) for a new pair (the old one stops working)",
)
async def refresh(
    app: App,
    session: DbSession,
    client: Client,
    request: Request,
    response: Response,
    body: OptionalRefresh = None,
) -> TokenResponse:
    token = presented_refresh_token(body, request)
    if token is None:
        raise AuthenticationFailed(
            "No refresh token: send refresh_token in the body, or log in again.",
            code="missing_refresh_token",
        )
    result = await app.accounts.refresh(session, refresh_token=token, client=client)
    set_refresh_cookie(response, request, app.settings, result)
    return token_response(result)


@auth.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(422),
    summary="End the session the refresh token (body or cookie) belongs to; clears the cookie",
)
async def logout(
    app: App, session: DbSession, client: Client, request: Request, body: OptionalRefresh = None
) -> Response:
    token = presented_refresh_token(body, request)
    if token is not None:
        await app.accounts.logout(session, refresh_token=token, client=client)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, request, app.settings)
    return response


@users.get("/me", responses=error_responses(401, 403), summary="Your profile")
async def get_me(user: CurrentUser) -> UserOut:
    return user_out(user)


@users.patch("/me", responses=error_responses(401, 403, 404, 422), summary="Update your profile")
async def update_me(
    body: UpdateProfileRequest, user: CurrentUser, app: App, session: DbSession
) -> UserOut:
    updated = await app.accounts.update_profile(
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
    body: ChangePasswordRequest, user: CurrentUser, app: App, session: DbSession, client: Client
) -> Response:
    await app.accounts.change_password(
        session,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        client=client,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
