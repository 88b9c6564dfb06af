"""Per-deployment circuit breakers and health figures."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    """Opens after `failure_threshold` failures in a row; after `cooldown_s` lets one probe
    through (half-open): its success closes the circuit, its failure opens it again."""

    failure_threshold: int
    cooldown_s: float
    window: int = 50
    clock: Callable[[], float] = time.monotonic
    state: str = CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = False
    in_flight: int = 0
    outcomes: deque[tuple[bool, float]] = field(default_factory=deque)

    def allow(self) -> bool:
        """May a call go to this deployment now? (Claims the probe slot when half-open.)"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = HALF_OPEN
            self.probe_in_flight = False
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def available(self) -> bool:
        """Like allow(), without claiming anything: for planning and reporting."""
        if self.state == OPEN:
            return self.clock() - self.opened_at >= self.cooldown_s
        if self.state == HALF_OPEN:
            return not self.probe_in_flight
        return True

    def record(self, ok: bool, latency_s: float) -> None:
        self.outcomes.append((ok, latency_s))
        while len(self.outcomes) > self.window:
            self.outcomes.popleft()
        if ok:
            self.state = CLOSED
            self.consecutive_failures = 0
            self.probe_in_flight = False
            return
        self.consecutive_failures += 1
        if self.state == HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self.state = OPEN
            self.opened_at = self.clock()
            self.probe_in_flight = False

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (the client went away)."""
        self.probe_in_flight = False

    def snapshot(self) -> dict[str, object]:
        n = len(self.outcomes)
        errors = sum(1 for ok, _ in self.outcomes if not ok)
        latencies = sorted(lat for ok, lat in self.outcomes if ok)
        state = self.state
        if state == OPEN and self.clock() - self.opened_at >= self.cooldown_s:
            state = HALF_OPEN
        return {
            "state": state,
            "consecutive_failures": self.consecutive_failures,
            "recent_requests": n,
            "recent_error_rate": round(errors / n, 4) if n else 0.0,
            "latency_p50_ms": _pct_ms(latencies, 0.5),
            "latency_p95_ms": _pct_ms(latencies, 0.95),
            "in_flight": self.in_flight,
        }


def _pct_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)
