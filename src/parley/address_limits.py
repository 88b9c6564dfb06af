"""Fixed-window limits per client address, for actions that cost nothing to repeat
(sign-ups, new organisations): shared by every process when Redis is configured."""

from __future__ import annotations

import math

from parley.backends.limits import Counter, Limiter
from parley.errors import RateLimited
from parley.kit.netaddr import address_bucket


class AddressLimit:
    def __init__(
        self, limiter: Limiter, *, name: str, limit: int, window_s: int, what: str, code: str
    ) -> None:
        self.limiter = limiter
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self.what = what  # "sign-ups", as the message names them
        self.code = code

    async def take(self, ip: str | None) -> None:
        """Count one from this address, or refuse with 429 once its window is full."""
        key = f"{self.name}:ip:{address_bucket(ip)}"
        admission = await self.limiter.admit([Counter(key, 1, self.limit, self.window_s)])
        if not admission.allowed:
            retry_after_s = max(1, math.ceil(admission.resets_in_s[0]))
            raise RateLimited(
                f"Too many {self.what} from your network address ({self.limit} per "
                f"{self.window_s} seconds); try again in {retry_after_s} seconds.",
                retry_after_s=retry_after_s,
                code=self.code,
            )
