"""Argon2id password hashing, run off the event loop, and the password strength policy."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256

# The most used passwords of public breach lists that pass the length rule.
_COMMON = frozenset(
    {
        "1234567890",
        "0123456789",
        "1234567891",
        "12345678910",
        "qwertyuiop",
        "password1",
        "password12",
        "password123",
        "passw0rd123",
        "iloveyou12",
        "1q2w3e4r5t",
        "qwerty1234",
        "qwerty12345",
        "1qaz2wsx3edc",
        "abcdefghij",
        "abc1234567",
        "letmein123",
        "welcome123",
        "administrator",
        "changeme123",
        "football123",
        "baseball123",
        "sunshine12",
        "superman12",
        "trustno123",
        "monkey1234",
        "dragon1234",
        "princess12",
        "qazwsxedc123",
        "asdfghjkl1",
        "zxcvbnm123",
        "111111111111",
        "0000000000",
        "1111111111",
        "aaaaaaaaaa",
    }
)


class PasswordHasherService:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verifying against this when an account does not exist keeps timing the same.
        self._dummy = self._hasher.hash("not-a-real-password-for-timing")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def _verify() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._dummy, password)
            except (VerificationError, InvalidHashError):
                return False

        ok = await anyio.to_thread.run_sync(_verify)
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)


def password_problem(password: str, *, email: str = "") -> str | None:
    """Why a password is too weak, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters long."
    if len(password) > MAX_LENGTH:
        return f"Password must be at most {MAX_LENGTH} characters long."
    if len(set(password)) < 4:
        return "Password is too repetitive; use at least 4 different characters."
    if password.lower() in _COMMON:
        return "Password is one of the most common passwords; choose another."
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in password.lower():
        return "Password must not contain your email address."
    return None
