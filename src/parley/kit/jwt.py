"""Short-lived signed access tokens (JWT, HS256)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from parley.kit.crypto import random_token


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    expires_at: datetime
    token_id: str
    issued_at: int = 0  # Unix seconds


class AccessTokenSigner:
    algorithm = "HS256"

    def __init__(self, key: str, *, issuer: str, ttl_s: int) -> None:
        self._key = key
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, subject: str, now: datetime) -> tuple[str, AccessClaims]:
        claims = AccessClaims(
            subject, now + timedelta(seconds=self.ttl_s), random_token(12), int(now.timestamp())
        )
        payload: dict[str, Any] = {
            "sub": subject,
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "jti": claims.token_id,
            "typ": "access",
        }
        return jwt.encode(payload, self._key, algorithm=self.algorithm), claims

    def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                # Time claims are checked below against the injectable clock, not the wall
                # clock (PyJWT refuses an `iat` later than its own now: clock skew between
                # processes, or a moved test clock, would reject fresh tokens).
                options={
                    "require": ["sub", "exp", "iat", "iss", "typ"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid from exc
        if payload.get("typ") != "access":
            raise TokenInvalid
        try:
            expires_at = datetime.fromtimestamp(int(payload["exp"]), tz=now.tzinfo)
            issued_at = int(payload["iat"])
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise TokenInvalid from exc
        if expires_at <= now:
            raise TokenExpired
        return AccessClaims(payload["sub"], expires_at, payload.get("jti", ""), issued_at)


class TicketSigner:
    """Short-lived signed tickets (JWT, HS256) for one purpose each: the `typ` claim tells
    them apart from each other and from access tokens (which must say "access")."""

    algorithm = "HS256"

    def __init__(self, key: str, *, issuer: str) -> None:
        self._key = key
        self.issuer = issuer

    def issue(self, typ: str, claims: dict[str, Any], now: datetime, ttl_s: int) -> str:
        issued = int(now.timestamp())
        payload = {
            **claims,
            "iss": self.issuer,
            "iat": issued,
            "exp": issued + ttl_s,
            "jti": random_token(16),
            "typ": typ,
        }
        return jwt.encode(payload, self._key, algorithm=self.algorithm)

    def verify(self, token: str, typ: str, now: datetime) -> dict[str, Any]:
        """The claims of a ticket of kind `typ`; TokenExpired or TokenInvalid otherwise."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                # Checked below against the injectable clock (see AccessTokenSigner.verify).
                options={
                    "require": ["exp", "iat", "iss", "jti", "typ"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid from exc
        if payload.get("typ") != typ:
            raise TokenInvalid
        try:
            expires = int(payload["exp"])
        except (TypeError, ValueError) as exc:
            raise TokenInvalid from exc
        if expires <= now.timestamp():
            raise TokenExpired
        return payload
