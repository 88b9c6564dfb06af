"""Creating, listing and revoking API keys, and authenticating requests that carry one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.audit.actions import AuditAction
from parley.db.engine import Database
from parley.db.unit import after_commit
from parley.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from parley.keys import repository
from parley.keys.cache import CachedKey, KeyCache, KeyUsageTracker
from parley.keys.models import ApiKey
from parley.kit.clock import Clock, as_utc, utcnow
from parley.kit.crypto import random_token, sha256_hex
from parley.kit.ids import new_id
from parley.kit.singleflight import SingleFlight
from parley.orgs.roles import Action, Scope
from parley.principal import Actor, OrgContext

KEY_PREFIX = "sk-parley-"
VISIBLE_CHARS = 8
_SCOPES = {s.value for s in Scope}


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def _check_within_own_scopes(org: OrgContext, scopes: Sequence[Scope]) -> None:
    """An API key may create keys only within its own scopes, so a leaked key cannot mint a
    stronger one; a person's role allows any scopes."""
    if org.actor.api_key_id is None:
        return
    lacking = sorted({s.value for s in scopes} - {s.value for s in org.actor.scopes})
    if lacking:
        own = ", ".join(sorted(s.value for s in org.actor.scopes))
        raise PermissionDenied(
            f"This API key may create keys only within its own scopes ({own}); it lacks "
            f"{', '.join(lacking)}. Ask an admin to create that key with their own sign-in.",
            code="scopes_exceed_own",
            param="scopes",
        )


def _entry(key: ApiKey, fetched_at: float) -> CachedKey:
    return CachedKey(
        key_id=key.id,
        org_id=key.org_id,
        scopes=frozenset(Scope(s) for s in key.scopes if s in _SCOPES),
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
        fetched_at=fetched_at,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
    )


class KeyService:
    def __init__(self, cache: KeyCache, usage: KeyUsageTracker, *, clock: Clock = utcnow) -> None:
        self.cache = cache
        self.usage = usage
        self._lookups: SingleFlight[str, CachedKey] = SingleFlight()
        self.clock = clock

    async def create(
        self,
        session: AsyncSession,
        org: OrgContext,
        *,
        name: str,
        scopes: Sequence[Scope],
        expires_at: datetime | None,
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
    ) -> CreatedKey:
        org.require(Action.API_KEYS_CREATE)
        now = self.clock()
        if not name.strip():
            raise InvalidRequest("API key name must not be empty.", param="name")
        if not scopes:
            raise InvalidRequest(
                "Give the key at least one scope: " + ", ".join(s.value for s in Scope) + ".",
                param="scopes",
            )
        _check_within_own_scopes(org, scopes)
        if expires_at is not None:
            if expires_at <= now:
                raise InvalidRequest("expires_at must be in the future.", param="expires_at")
            expires_at = as_utc(expires_at)
        secret = KEY_PREFIX + random_token(32)
        key = ApiKey(
            id=new_id("key"),
            org_id=org.org_id,
            name=name.strip(),
            prefix=secret[: len(KEY_PREFIX) + VISIBLE_CHARS],
            key_hash=sha256_hex(secret),
            scopes=sorted({s.value for s in scopes}),
            created_by=org.actor.id,
            created_at=now,
            expires_at=expires_at,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
        )
        session.add(key)
        audit.record_in(
            session,
            org,
            AuditAction.API_KEY_CREATED,
            target_type="api_key",
            target_id=key.id,
            details={"name": key.name, "scopes": key.scopes},
        )
        return CreatedKey(key, secret)

    async def list(
        self,
        session: AsyncSession,
        org: OrgContext,
        *,
        include_revoked: bool,
        limit: int,
        after: str | None,
    ) -> tuple[Sequence[ApiKey], bool]:
        org.require(Action.API_KEYS_READ)
        return await repository.list_keys(
            session, org.org_id, include_revoked=include_revoked, limit=limit, after=after
        )

    async def get(self, session: AsyncSession, org: OrgContext, key_id: str) -> ApiKey:
        org.require(Action.API_KEYS_READ)
        key = await repository.get(session, org.org_id, key_id)
        if key is None:
            raise NotFound(f"No API key {key_id}.", code="api_key_not_found")
        return key

    async def revoke(self, session: AsyncSession, org: OrgContext, key_id: str) -> ApiKey:
        org.require(Action.API_KEYS_REVOKE)
        key = await repository.get(session, org.org_id, key_id)
        if key is None:
            raise NotFound(f"No API key {key_id}.", code="api_key_not_found")
        if key.revoked_at is not None:
            raise Conflict(f"API key {key_id} is already revoked.", code="api_key_revoked")
        key.revoked_at = self.clock()
        audit.record_in(
            session, org, AuditAction.API_KEY_REVOKED, target_type="api_key", target_id=key.id
        )
        key_hash = key.key_hash
        after_commit(session, lambda: self.cache.announce_revoked(key_hash))
        return key

    async def _load(self, db: Database, key_hash: str) -> CachedKey:
        # Taken before the read: a revocation announced after this instant may not be
        # in what we read, so the cache refuses to keep the entry (see KeyCache.put).
        fetched_at = time.monotonic()
        async with db.read_session() as session:
            key = await repository.get_by_hash(session, key_hash)
        if key is None:
            raise AuthenticationFailed(
                "Invalid API key; check the key or create a new one.", code="invalid_api_key"
            )
        entry = _entry(key, fetched_at)
        self.cache.put(key_hash, entry)
        return entry

    async def actor_for(self, db: Database, org_id: str, key_id: str) -> Actor:
        """The key `key_id` as it stands now (uncached): refused once revoked or expired.
        For what authenticated with the key earlier and holds on (a conversation socket)."""
        # Its own read-only unit, like `_load`: the caller holds no session.
        async with db.read_session() as session:
            key = await repository.get(session, org_id, key_id)
        if key is None:
            raise AuthenticationFailed("This API key no longer exists.", code="invalid_api_key")
        return self._actor(_entry(key, time.monotonic()))

    async def authenticate(self, db: Database, secret: str) -> Actor:
        """Cached: a known key costs no database round trip until its entry expires."""
        key_hash = sha256_hex(secret)
        entry = self.cache.get(key_hash) or await self._lookups.run(
            key_hash, lambda: self._load(db, key_hash)
        )
        return self._actor(entry)

    def _actor(self, entry: CachedKey) -> Actor:
        if entry.revoked:
            raise AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
        if entry.expires_at is not None and entry.expires_at <= self.clock():
            raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
        self.usage.touch(entry.key_id)
        return Actor(
            api_key_id=entry.key_id,
            key_org_id=entry.org_id,
            scopes=entry.scopes,
            rpm_limit=entry.rpm_limit,
            tpm_limit=entry.tpm_limit,
        )
