"""Failed-login limits and the progressive delay.

Attempts are counted per (account, client address) and per address across accounts, and
taken before the password is checked, so parallel guesses cannot all slip past the limit;
a successful sign-in gives its attempt back. There is deliberately no limit per account
across all addresses: whoever knows an email could then lock its owner out from anywhere.
A user's correct password from an address that has not failed is never refused.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from parley.backends.limits import Adjustment, Counter, Limiter
from parley.config import Settings
from parley.errors import RateLimited
from parley.kit.clock import Sleep
from parley.kit.crypto import sha256_hex
from parley.kit.netaddr import address_bucket


def login_delay_s(failures: int, *, free: int, base_s: float, max_s: float) -> float:
    """Seconds to wait before answering an attempt that follows `failures` failed ones of
    the same (account, address): nothing for the first `free`, then doubling up to max_s."""
    if failures < free or base_s <= 0:
        return 0.0
    return float(min(max_s, base_s * 2 ** min(failures - free, 32)))


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    account_key: str
    address_key: str
    failures_before: int  # of this (account, address), attempts in flight included
    delay_s: float


class LoginThrottle:
    def __init__(self, settings: Settings, limiter: Limiter, *, sleep: Sleep = asyncio.sleep):
        self.settings = settings
        self.limiter = limiter
        self.sleep = sleep

    async def begin(self, email: str, ip: str | None) -> LoginAttempt:
        """Count the attempt as a failure until it succeeds, or refuse it (429); then wait
        out the delay its earlier failures earned."""
        s = self.settings
        address = address_bucket(ip)
        account_key = f"login:acct-ip:{sha256_hex(email)}:{address}"
        address_key = f"login:ip:{address}"
        window = s.login_failure_window_s
        admission = await self.limiter.admit(
            [
                Counter(account_key, 1, s.login_max_failures_per_account_ip, window),
                Counter(address_key, 1, s.login_max_failures_per_ip, window),
            ]
        )
        if not admission.allowed:
            refused = admission.refused or 0
            retry_after_s = max(1, math.ceil(admission.resets_in_s[refused]))
            where = "to this account from" if refused == 0 else "from"
            raise RateLimited(
                f"Too many failed sign-ins {where} your network address; "
                f"try again in {retry_after_s} seconds.",
                retry_after_s=retry_after_s,
                code="too_many_login_attempts",
            )
        failures = admission.values[0] - 1
        delay_s = login_delay_s(
            failures,
            free=s.login_delay_free_failures,
            base_s=s.login_delay_base_s,
            max_s=s.login_delay_max_s,
        )
        if delay_s > 0:
            # Before the password is checked, whatever the outcome: a delay only on wrong
            # answers would tell a client that gives up early that its guess was wrong.
            await self.sleep(delay_s)
        return LoginAttempt(account_key, address_key, failures, delay_s)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The (account, address) starts afresh; the address keeps its other failures."""
        window = self.settings.login_failure_window_s
        await self.limiter.adjust_many(
            [
                Adjustment(attempt.account_key, -(attempt.failures_before + 1), window),
                Adjustment(attempt.address_key, -1, window),
            ]
        )
