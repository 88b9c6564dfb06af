"""What can go wrong talking to an upstream, whether trying again can help, and what a client
is told about it.

A provider's own error text can hold anything (its account details, our request echoed,
internal hosts), so it never reaches a client: clients read the wording below, with the kind
of failure and the request id, and the details go to the log under that id.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

log = structlog.get_logger("parley.gateway")

# Retrying the same deployment can help with these; 400/401/403/404/422 never.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

_KINDS = {
    "timeout": "timeout",
    "connect": "connection failure",
    "protocol": "malformed answer",
    "too_large": "answer over the size limit",
}


@dataclass
class UpstreamError(Exception):
    """A failed upstream call. `status` is None for connect errors, timeouts and bad payloads.

    `public` marks a message in Parley's own words (a translation that cannot express the
    request), which a client may read as it is.
    """

    message: str
    status: int | None = None
    kind: str = "http"  # http | connect | timeout | protocol | too_large
    retry_after_s: float | None = None
    provider: str = ""
    public: bool = False

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

    @property
    def status_class(self) -> str:
        """The kind of failure without the provider's words: `HTTP 5xx`, `timeout`..."""
        if self.status is not None:
            return f"HTTP {self.status // 100}xx"
        return _KINDS.get(self.kind, "failure")


class StreamInterrupted(Exception):
    """An upstream stream broke after the first byte reached the client."""

    def __init__(self, cause: UpstreamError) -> None:
        super().__init__(cause.message)
        self.cause = cause


def log_failure(event: str, error: UpstreamError, **context: object) -> None:
    """The provider's own words, for the operator; keys in them are masked by the logger."""
    log.warning(
        event,
        **context,
        provider=error.provider,
        status=error.status,
        kind=error.kind,
        error=error.message,
    )


def _logged_under() -> str:
    # The request id the access middleware bound for this request's log lines.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return f"; the details are logged under request id {request_id}" if request_id else ""


def rejected_message(error: UpstreamError) -> str:
    """A provider refused the request itself (400, 413, 422), or answered more than we take."""
    if error.kind == "too_large":  # Parley's own words: the size and the limit
        return (
            f"{error.message}; ask for less at a time (fewer inputs, a lower max_tokens or n)"
            f"{_logged_under()}."
        )
    if error.public:
        return f"{error.provider} cannot take this request: {error.message}"
    return f"The provider rejected the request ({error.status_class}){_logged_under()}."


def failed_message(model: str, last: UpstreamError) -> str:
    """Every deployment of a model failed; `last` is the final attempt's error."""
    if last.status == 429:
        what = "are rate limiting Parley"
    elif last.kind == "timeout":
        what = "did not answer in time"
    else:
        what = "failed"
    return f"The providers of {model} {what} ({last.status_class}){_logged_under()}."


def stream_broke_off(exc: StreamInterrupted) -> str:
    """Log why a stream broke off after it began; returns what the client reads."""
    cause = exc.cause
    log_failure("gateway.stream_broke_off", cause)
    return f"The provider broke off the reply ({cause.status_class}){_logged_under()}."
