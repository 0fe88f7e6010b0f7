"""Errors render as the bodies and statuses the official SDKs expect."""

from __future__ import annotations

import orjson
import pytest

from sluicegate import errors


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (errors.InvalidRequestError("bad"), 400, "invalid_request_error", None),
        (errors.InvalidJSONError("bad"), 400, "invalid_request_error", "invalid_json"),
        (errors.AuthenticationError("no"), 401, "authentication_error", "invalid_api_key"),
        (errors.ModelNotAllowedError("no"), 403, "permission_error", "model_not_allowed"),
        (errors.ModelNotFoundError("no"), 404, "invalid_request_error", "model_not_found"),
        (errors.RequestTooLargeError("big"), 413, "invalid_request_error", "request_too_large"),
        (errors.RateLimitError("slow"), 429, "rate_limit_error", "rate_limit_exceeded"),
        (errors.QuotaExceededError("broke"), 429, "insufficient_quota", "insufficient_quota"),
        (errors.UpstreamConnectionError("down"), 502, "api_error", "upstream_connect_error"),
        (errors.UpstreamTimeoutError("slow"), 504, "timeout_error", "upstream_timeout"),
    ],
)
def test_each_error_has_its_status_type_and_code(
    error: errors.GatewayError, status: int, kind: str, code: str | None
) -> None:
    """Every class in the tree renders OpenAI's four-key error body with its own status."""
    body = orjson.loads(errors.render_openai(error))
    assert error.http_status == status
    assert body == {"error": {"message": error.message, "type": kind, "param": None, "code": code}}


def test_quota_error_tells_sdk_not_to_retry() -> None:
    """An exhausted budget carries `x-should-retry: false` so the OpenAI SDK does not retry it."""
    assert errors.QuotaExceededError("broke").headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("upstream", "ours"), [(400, 400), (404, 404), (429, 429), (500, 502), (503, 502), (529, 502)]
)
def test_upstream_status_keeps_4xx_and_turns_5xx_into_502(upstream: int, ours: int) -> None:
    """Provider 4xx keep their status; provider 5xx (and Anthropic's 529) become 502."""
    assert errors.UpstreamStatusError("x", upstream_status=upstream).http_status == ours


def test_anthropic_rendering_uses_anthropic_shape() -> None:
    """On the Anthropic surface the same error renders as `{"type":"error","error":{...}}`."""
    body = orjson.loads(errors.render_anthropic(errors.RateLimitError("slow down")))
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
