"""The exception tree of Sluicegate; every error a client can see is one of these.

Each class carries its HTTP status, OpenAI error ``type`` and ``code``, and whether a router may
retry it on another deployment. ``render_openai`` / ``render_anthropic`` turn any of them into the
body each API's official SDK parses into its matching exception class.

    GatewayError                       500 api_error
    ├── InvalidRequestError            400 invalid_request_error
    │   ├── InvalidJSONError           400 invalid_request_error / invalid_json
    │   ├── ModelNotFoundError         404 invalid_request_error / model_not_found
    │   ├── NotFoundError              404 invalid_request_error / not_found
    │   ├── MethodNotAllowedError      405 invalid_request_error / method_not_allowed
    │   └── RequestTooLargeError       413 invalid_request_error / request_too_large
    ├── AuthenticationError            401 authentication_error / invalid_api_key
    ├── PermissionDeniedError          403 permission_error
    │   └── ModelNotAllowedError       403 permission_error / model_not_allowed
    ├── RateLimitError                 429 rate_limit_error / rate_limit_exceeded   (retry-after)
    │   └── QuotaExceededError         429 insufficient_quota                       (x-should-retry: false)
    ├── ConfigError                    500 api_error / config_error  (also raised by `config check`)
    ├── ConflictError                  409 invalid_request_error / conflict  (admin change refused)
    ├── ShuttingDownError              503 api_error / shutting_down  (draining for shutdown)
    └── UpstreamError                  502 api_error / upstream_error               retryable
        ├── UpstreamStatusError        the provider's own 4xx/5xx, status and message kept
        ├── UpstreamConnectionError    502 api_error / upstream_connect_error       retryable
        ├── UpstreamTimeoutError       504 timeout_error / upstream_timeout         retryable
        └── UpstreamProtocolError      502 api_error / upstream_bad_response        (unparseable reply)
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

# Anthropic's error `type` per HTTP status (reference §3.4); used when rendering on /v1/messages.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    """Base of every error Sluicegate reports to a client."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = headers or {}

    @property
    def http_status(self) -> int:
        return self.status

    @property
    def error_type(self) -> str:
        return self.type

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_anthropic(self) -> dict[str, Any]:
        kind = _ANTHROPIC_TYPES.get(self.http_status)
        if kind is None:
            kind = "api_error" if self.http_status >= 500 else "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": self.message}}


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidJSONError(InvalidRequestError):
    default_code = "invalid_json"


class ModelNotFoundError(InvalidRequestError):
    status = 404
    default_code = "model_not_found"


class NotFoundError(InvalidRequestError):
    status = 404
    default_code = "not_found"


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    default_code = "method_not_allowed"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    default_code = "request_too_large"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"


class ModelNotAllowedError(PermissionDeniedError):
    default_code = "model_not_allowed"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceededError(RateLimitError):
    type = "insufficient_quota"
    default_code = "insufficient_quota"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # The OpenAI SDK would otherwise retry a 429; an exhausted budget will not recover by retrying.
        self.headers.setdefault("x-should-retry", "false")


class ConfigError(GatewayError):
    default_code = "config_error"


class ConflictError(GatewayError):
    """An admin change that would leave the gateway in a state it refuses (e.g. no deployment left)."""

    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class ShuttingDownError(GatewayError):
    """The worker is draining for shutdown: new calls go elsewhere, calls past the drain deadline end."""

    status = 503
    default_code = "shutting_down"


class UpstreamError(GatewayError):
    status = 502
    default_code: ClassVar[str | None] = "upstream_error"
    retryable = True


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; its status and message are passed to the client.

    Provider 4xx are the caller's problem (bad parameter, context too long) and keep their status;
    provider 5xx become 502 so a client can tell "the provider failed" from "the gateway failed".
    The provider's `code` is kept as sent, null included.
    """

    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type

    @property
    def http_status(self) -> int:
        if self.upstream_status == 529:  # Anthropic "overloaded": a provider-side failure
            return 502
        if 400 <= self.upstream_status < 500:
            return self.upstream_status
        return 502

    @property
    def error_type(self) -> str:
        if self.upstream_type:
            return self.upstream_type
        status = self.http_status
        if status == 429:
            return "rate_limit_error"
        if status == 401:
            return "authentication_error"
        if status == 403:
            return "permission_error"
        if 400 <= status < 500:
            return "invalid_request_error"
        return "api_error"

    @property
    def is_retryable(self) -> bool:
        return self.upstream_status in (408, 409, 429) or self.upstream_status >= 500


class UpstreamConnectionError(UpstreamError):
    default_code = "upstream_connect_error"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    type = "timeout_error"
    default_code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    default_code = "upstream_bad_response"
    retryable = False


def render_openai(error: GatewayError) -> bytes:
    return orjson.dumps(error.to_openai())


def render_anthropic(error: GatewayError) -> bytes:
    return orjson.dumps(error.to_anthropic())
