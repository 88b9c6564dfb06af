"""One error hierarchy: each error knows its HTTP status, envelope type and code."""

from __future__ import annotations

from typing import Any, ClassVar


class ParleyError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}
        # Commit the unit of work's writes before answering with this error.
        self.keep_changes = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        }


class InvalidRequest(ParleyError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class AuthenticationFailed(ParleyError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_credentials"


class PermissionDenied(ParleyError):
    status = 403
    type = "permission_error"
    default_code = "forbidden"


class NotFound(ParleyError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class Conflict(ParleyError):
    status = 409
    type = "conflict_error"
    default_code = "conflict"


class PayloadTooLarge(ParleyError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class Unprocessable(ParleyError):
    status = 422
    type = "invalid_request_error"
    default_code = "validation_error"


class RateLimited(ParleyError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after_s))})
        self.retry_after_s = retry_after_s


class ServiceUnavailable(ParleyError):
    status = 503
    type = "api_error"
    default_code = "service_unavailable"
