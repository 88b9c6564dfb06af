"""The password policy, the hasher and the access-token signer on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from parley.kit.jwt import AccessTokenSigner, TokenExpired, TokenInvalid
from parley.kit.passwords import PasswordHasherService, password_problem

KEY = "unit-test-signing-key-" + "k" * 32
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("password", "email", "reason"),
    [
        ("123456789", "", "at least 10"),
        ("y" * 257, "", "at most 256"),
        ("abcabcabcabc", "", "repetitive"),
        ("QWERTYUIOP", "", "common"),
        ("Administrator", "", "common"),
        ("i am rosalind, hi", "Rosalind@example.com", "email"),
        ("ROSALIND-rocks-2030", "rosalind@example.com", "email"),
    ],
)
def test_password_problem_names_the_weakness(password: str, email: str, reason: str) -> None:
    problem = password_problem(password, email=email)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("correct horse battery staple", "ann@example.com"),
        ("abcd" * 3, ""),
        ("z" * 252 + "abc", ""),
        # A short local part is not held against the password.
        ("bob loves long walks", "bob@example.com"),
        # Only the local part counts, not the domain.
        ("example of a good one", "ann@example.com"),
    ],
)
def test_password_problem_accepts_reasonable_passwords(password: str, email: str) -> None:
    assert password_problem(password, email=email) is None


async def test_hasher_verifies_only_the_right_password() -> None:
    hasher = PasswordHasherService(time_cost=1, memory_kib=1024, parallelism=1)
    stored = await hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert await hasher.verify(stored, "correct horse battery staple")
    assert not await hasher.verify(stored, "correct horse battery stapler")
    assert not await hasher.verify("not a hash", "correct horse battery staple")
    # No account: the dummy hash is checked for timing, but the answer is always no.
    assert not await hasher.verify(None, "not-a-real-password-for-timing")
    assert await hasher.hash("same") != await hasher.hash("same")


async def test_hasher_flags_hashes_made_with_weaker_parameters() -> None:
    weak = PasswordHasherService(time_cost=1, memory_kib=1024, parallelism=1)
    strong = PasswordHasherService(time_cost=2, memory_kib=2048, parallelism=1)
    old = await weak.hash("correct horse battery staple")
    assert strong.needs_rehash(old)
    assert not weak.needs_rehash(old)
    assert await strong.verify(old, "correct horse battery staple")


def test_signer_round_trip_and_expiry_on_the_given_clock() -> None:
    signer = AccessTokenSigner(KEY, issuer="parley", ttl_s=900)
    token, claims = signer.issue("usr_1", NOW)
    assert claims.expires_at == NOW + timedelta(seconds=900)
    verified = signer.verify(token, NOW + timedelta(seconds=899))
    assert (verified.subject, verified.token_id) == ("usr_1", claims.token_id)
    with pytest.raises(TokenExpired):
        signer.verify(token, NOW + timedelta(seconds=900))


def test_signer_accepts_a_token_issued_ahead_of_the_wall_clock() -> None:
    """Time is the injected clock's, not the machine's: a token from a process whose clock
    runs ahead (or from a moved test clock) is valid until its own expiry."""
    signer = AccessTokenSigner(KEY, issuer="parley", ttl_s=900)
    ahead = datetime.now(UTC) + timedelta(hours=1)
    token, _ = signer.issue("usr_1", ahead)
    assert signer.verify(token, ahead + timedelta(seconds=1)).subject == "usr_1"


def test_signer_refuses_foreign_and_malformed_tokens() -> None:
    signer = AccessTokenSigner(KEY, issuer="parley", ttl_s=900)
    token, _ = signer.issue("usr_1", NOW)
    other_key = AccessTokenSigner("another-key-" + "o" * 32, issuer="parley", ttl_s=900)
    other_issuer = AccessTokenSigner(KEY, issuer="someone-else", ttl_s=900)
    base = {"sub": "usr_1", "iss": "parley", "iat": int(NOW.timestamp()), "typ": "access"}
    later = int(NOW.timestamp()) + 60
    with pytest.raises(TokenInvalid):
        other_key.verify(token, NOW)
    with pytest.raises(TokenInvalid):
        other_issuer.verify(token, NOW)
    for payload in (
        {**base, "exp": "soon"},
        {**base, "exp": 10**30},
        {**base, "exp": later, "typ": "refresh"},
        {k: v for k, v in base.items() if k != "iat"} | {"exp": later},
    ):
        forged = jwt.encode(payload, KEY, algorithm="HS256")
        with pytest.raises(TokenInvalid):
            signer.verify(forged, NOW)
    with pytest.raises(TokenInvalid):
        signer.verify("not.a.token", NOW)
