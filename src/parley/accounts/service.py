"""Accounts, sign-in, rotating refresh tokens, password changes and profiles.

Signing up (an account with its personal organisation) is its own use case: parley.signup.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.accounts import repository
from parley.accounts.login_throttle import LoginThrottle
from parley.accounts.memberships import Memberships
from parley.accounts.models import RefreshToken, User
from parley.audit import service as audit
from parley.audit.actions import AuditAction
from parley.backends.counters import Counters
from parley.backends.limits import Limiter
from parley.config import Settings
from parley.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    RateLimited,
)
from parley.kit.clock import Clock, Sleep, utcnow
from parley.kit.crypto import random_token, sha256_hex
from parley.kit.emails import normalize_email
from parley.kit.ids import new_id
from parley.kit.jwt import AccessClaims, AccessTokenSigner, TokenExpired, TokenInvalid
from parley.kit.passwords import PasswordHasherService, password_problem
from parley.principal import Actor

REFRESH_PREFIX = "rt_"
BAD_CREDENTIALS = "Incorrect email or password."


@dataclass(frozen=True, slots=True)
class Session:
    """What a successful sign-in yields."""

    user: User
    access_token: str
    access_expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str | None = None
    user_agent: str | None = None


def _email_taken() -> Conflict:
    return Conflict(
        "An account with this email already exists; log in instead.",
        code="email_taken",
        param="email",
    )


class AccountService:
    def __init__(
        self,
        settings: Settings,
        *,
        hasher: PasswordHasherService,
        signer: AccessTokenSigner,
        counters: Counters,
        limiter: Limiter,
        memberships: Memberships,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.hasher = hasher
        self.signer = signer
        self.counters = counters
        self.memberships = memberships
        self.clock = clock
        self.login_throttle = LoginThrottle(settings, limiter, sleep=sleep)

    # --- accounts and sign-in ------------------------------------------------------------

    async def open_account(
        self, session: AsyncSession, *, email: str, password: str, name: str
    ) -> User:
        """A new user, after the checks a person signing up gets answers to."""
        email = normalize_email(email)
        if problem := password_problem(password, email=email):
            raise InvalidRequest(problem, code="weak_password", param="password")
        if await repository.get_user_by_email(session, email) is not None:
            raise _email_taken()
        return await self.create_user(session, email=email, password=password, name=name)

    async def create_user(
        self, session: AsyncSession, *, email: str, password: str, name: str = ""
    ) -> User:
        now = self.clock()
        user = User(
            id=new_id("usr"),
            email=normalize_email(email),
            name=name.strip(),
            password_hash=await self.hasher.hash(password),
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as exc:
            # A concurrent sign-up with this email committed after our lookup (email is the
            # only unique column besides the random id).
            raise _email_taken() from exc
        return user

    async def login(
        self, session: AsyncSession, *, email: str, password: str, client: ClientInfo
    ) -> Session:
        email = normalize_email(email)
        # Counted (and delayed) before the database is touched: no connection is held while
        # a throttled client waits.
        attempt = await self.login_throttle.begin(email, client.ip)
        user = await repository.get_user_by_email(session, email)
        ok = await self.hasher.verify(user.password_hash if user else None, password)
        if user is None or not ok or not user.is_active:
            org_ids = await self.memberships.org_ids_of(session, user.id) if user else [None]
            audit.record(
                session,
                AuditAction.LOGIN_FAILED,
                org_ids=org_ids,
                actor=Actor(user_id=user.id) if user else None,
                ip=client.ip,
                target_type="user",
                target_id=user.id if user else None,
                details={} if user else {"email_hash": sha256_hex(email)},
            )
            error = AuthenticationFailed(BAD_CREDENTIALS, code="invalid_credentials")
            error.keep_changes = True
            raise error

        await self.login_throttle.succeeded(attempt)
        if self.hasher.needs_rehash(user.password_hash):
            user.password_hash = await self.hasher.hash(password)
        audit.record(
            session,
            AuditAction.LOGIN,
            org_ids=await self.memberships.org_ids_of(session, user.id),
            actor=Actor(user_id=user.id),
            ip=client.ip,
            target_type="user",
            target_id=user.id,
        )
        return await self.start_session(session, user, client)

    # --- refresh-token rotation ----------------------------------------------------------

    async def refresh(
        self, session: AsyncSession, *, refresh_token: str, client: ClientInfo
    ) -> Session:
        now = self.clock()
        current = await repository.get_refresh_token(
            session, sha256_hex(refresh_token), for_update=True
        )
        invalid = AuthenticationFailed(
            "Refresh token is invalid or expired; log in again.", code="invalid_refresh_token"
        )
        if current is None or current.revoked_at is not None:
            raise invalid
        if current.used_at is not None:
            # A rotated token came back: someone holds a stolen copy. End the whole family.
            await repository.revoke_family(session, current.family_id, now)
            audit.record(
                session,
                AuditAction.REFRESH_TOKEN_REUSED,
                org_ids=await self.memberships.org_ids_of(session, current.user_id),
                actor=Actor(user_id=current.user_id),
                ip=client.ip,
                target_type="user",
                target_id=current.user_id,
            )
            invalid.keep_changes = True
            raise invalid
        if current.expires_at <= now:
            raise invalid
        user = await repository.get_user(session, current.user_id)
        if user is None or not user.is_active:
            raise invalid
        current.used_at = now
        return await self.start_session(session, user, client, family_id=current.family_id)

    async def logout(
        self, session: AsyncSession, *, refresh_token: str, client: ClientInfo
    ) -> None:
        """Ends the session the refresh token belongs to; unknown tokens are ignored."""
        token = await repository.get_refresh_token(session, sha256_hex(refresh_token))
        if token is None or token.revoked_at is not None:
            return
        await repository.revoke_family(session, token.family_id, self.clock())
        audit.record(
            session,
            AuditAction.LOGOUT,
            org_ids=await self.memberships.org_ids_of(session, token.user_id),
            actor=Actor(user_id=token.user_id),
            ip=client.ip,
            target_type="user",
            target_id=token.user_id,
        )

    async def start_session(
        self,
        session: AsyncSession,
        user: User,
        client: ClientInfo,
        *,
        family_id: str | None = None,
    ) -> Session:
        now = self.clock()
        secret = REFRESH_PREFIX + random_token(32)
        ttl = self.settings.refresh_token_ttl_s
        session.add(
            RefreshToken(
                id=new_id("rtk"),
                user_id=user.id,
                family_id=family_id or new_id("rtf"),
                token_hash=sha256_hex(secret),
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
                ip=client.ip,
                user_agent=(client.user_agent or "")[:400] or None,
            )
        )
        access, claims = self.signer.issue(user.id, now)
        return Session(
            user=user,
            access_token=access,
            access_expires_in=int((claims.expires_at - now).total_seconds()),
            refresh_token=secret,
            refresh_expires_in=ttl,
        )

    # --- access tokens -------------------------------------------------------------------

    async def user_for_access_token(self, session: AsyncSession, token: str) -> User:
        """The active user behind an access token issued after their last password change."""
        claims = self._access_claims(token)
        user = await self.get_active_user(session, claims.subject)
        if claims.issued_at < int(user.password_changed_at.timestamp()):
            raise AuthenticationFailed(
                "This access token was issued before the password was changed; log in again.",
                code="token_revoked",
            )
        return user

    def _access_claims(self, token: str) -> AccessClaims:
        try:
            return self.signer.verify(token, self.clock())
        except TokenExpired as exc:
            raise AuthenticationFailed(
                "Access token has expired; refresh it or log in again.", code="token_expired"
            ) from exc
        except TokenInvalid as exc:
            raise AuthenticationFailed(
                "Access token is invalid (bad signature or format).", code="invalid_token"
            ) from exc

    # --- profile and password ------------------------------------------------------------

    async def get_active_user(self, session: AsyncSession, user_id: str) -> User:
        user = await repository.get_user(session, user_id)
        if user is None or not user.is_active:
            raise AuthenticationFailed(
                "The account behind this token no longer exists.", code="invalid_token"
            )
        return user

    async def update_profile(
        self,
        session: AsyncSession,
        user: User,
        *,
        name: str | None,
        default_org_id: str | None,
    ) -> User:
        if name is not None:
            user.name = name.strip()
        if default_org_id is not None:
            if await self.memberships.role_of(session, default_org_id, user.id) is None:
                raise NotFound(
                    f"No organisation {default_org_id} among yours.",
                    code="org_not_found",
                    param="default_org_id",
                )
            user.default_org_id = default_org_id
        user.updated_at = self.clock()
        return user

    async def change_password(
        self,
        session: AsyncSession,
        user: User,
        *,
        current_password: str,
        new_password: str,
        client: ClientInfo,
    ) -> None:
        # A stolen access token must not buy unlimited guesses at the password.
        guard = f"pwchange:{user.id}"
        tries = await self.counters.get(guard)
        if tries.value >= self.settings.login_max_failures_per_account_ip:
            raise RateLimited(
                f"Too many wrong current passwords; try again in {tries.retry_after_s} seconds.",
                retry_after_s=tries.retry_after_s,
                code="too_many_password_attempts",
            )
        if not await self.hasher.verify(user.password_hash, current_password):
            await self.counters.incr(guard, self.settings.login_failure_window_s)
            raise AuthenticationFailed(
                "Current password is incorrect.",
                code="invalid_credentials",
                param="current_password",
            )
        if problem := password_problem(new_password, email=user.email):
            raise InvalidRequest(problem, code="weak_password", param="new_password")
        if new_password == current_password:
            raise InvalidRequest(
                "The new password must differ from the current one.",
                code="weak_password",
                param="new_password",
            )
        now = self.clock()
        user.password_hash = await self.hasher.hash(new_password)
        user.password_changed_at = now
        user.updated_at = now
        # Every other session ends: whoever knew the old password is signed out.
        await repository.revoke_all_for_user(session, user.id, now)
        audit.record(
            session,
            AuditAction.PASSWORD_CHANGED,
            org_ids=await self.memberships.org_ids_of(session, user.id),
            actor=Actor(user_id=user.id),
            ip=client.ip,
            target_type="user",
            target_id=user.id,
        )
