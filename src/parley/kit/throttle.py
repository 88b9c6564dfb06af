"""A sliding-window limit for one holder (a socket, say): no shared state, no I/O."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` events in any `window_s` seconds."""

    def __init__(
        self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._times: deque[float] = deque()

    def take(self) -> float:
        """Count one event: 0 when it fits, else the seconds until one would (not counted)."""
        now = self.clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self.window_s - (now - self._times[0])
        self._times.append(now)
        return 0.0
