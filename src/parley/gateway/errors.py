"""What can go wrong talking to an upstream, and whether trying again can help."""

from __future__ import annotations

from dataclasses import dataclass

# Retrying the same deployment can help with these; 400/401/403/404/422 never.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass
class UpstreamError(Exception):
    """A failed upstream call. `status` is None for connect errors, timeouts and bad payloads."""

    message: str
    status: int | None = None
    kind: str = "http"  # http | connect | timeout | protocol | too_large
    retry_after_s: float | None = None
    provider: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        if self.status is None:
            return self.kind in ("connect", "timeout")
        return self.status in RETRYABLE_STATUSES or self.status >= 500

    @property
    def client_fault(self) -> bool:
        """The request itself is wrong: another deployment would refuse it too (or, for
        an answer over our size limit, answer it as largely)."""
        return self.status in (400, 413, 422) or self.kind == "too_large"


class StreamInterrupted(Exception):
    """An upstream stream broke after the first byte reached the client."""

    def __init__(self, cause: UpstreamError) -> None:
        super().__init__(cause.message)
        self.cause = cause
