"""Per-request routing controls (SPEC §6): headers, or the `sluicegate` object in the body.

`x-sluicegate-fallbacks` (comma-separated model names; empty = none), `x-sluicegate-retries`,
`x-sluicegate-timeout-s` and `x-sluicegate-priority` (`high`/`normal`/`low`), or the same as
`{"sluicegate": {"fallbacks": [...], "retries": N, "timeout_s": S, "priority": "..."}}`. A header
wins over the body. Bad values are a 400 naming the header or field. A request that sets none
gets the shared `NO_CONTROLS` object, so the common path allocates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequestError
from .priority import PRIORITIES

FALLBACKS_HEADER = b"x-sluicegate-fallbacks"
RETRIES_HEADER = b"x-sluicegate-retries"
TIMEOUT_HEADER = b"x-sluicegate-timeout-s"
PRIORITY_HEADER = b"x-sluicegate-priority"
HEADERS = frozenset({FALLBACKS_HEADER, RETRIES_HEADER, TIMEOUT_HEADER, PRIORITY_HEADER})
MAX_RETRIES = 10


@dataclass(frozen=True, slots=True)
class Controls:
    fallbacks: tuple[str, ...] | None = None  # None = the configured fallbacks
    retries: int | None = None
    timeout_s: float | None = None
    priority: int | None = None  # priority.HIGH / NORMAL / LOW; None = the key's default


NO_CONTROLS = Controls()


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _retries(value: Any, param: str) -> int:
    if isinstance(value, str | bytes):
        try:
            value = int(value)
        except ValueError:
            value = None
    if type(value) is not int or not 0 <= value <= MAX_RETRIES:
        raise _bad(f"'{param}' must be an integer from 0 to {MAX_RETRIES}", param)
    return value


def _timeout(value: Any, param: str) -> float:
    if isinstance(value, str | bytes):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise _bad(f"'{param}' must be a number of seconds greater than 0", param)
    return float(value)


def _priority(value: Any, param: str) -> int:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    found = PRIORITIES.get(value.strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise _bad(f"'{param}' must be one of high, normal, low", param)
    return found


def _fallbacks(value: Any, param: str) -> tuple[str, ...]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    if isinstance(value, list) and all(isinstance(name, str) and name for name in value):
        return tuple(value)
    raise _bad(f"'{param}' must be a list of model names", param)


def read_controls(headers: Mapping[bytes, bytes] | None, body: Any) -> Controls:
    """The request's controls; `body` is the `sluicegate` object taken out of the request body."""
    fallbacks = retries = timeout = priority = None
    if headers:
        raw = headers.get(FALLBACKS_HEADER)
        if raw is not None:
            fallbacks = _fallbacks(raw, "x-sluicegate-fallbacks")
        raw = headers.get(RETRIES_HEADER)
        if raw is not None:
            retries = _retries(raw, "x-sluicegate-retries")
        raw = headers.get(TIMEOUT_HEADER)
        if raw is not None:
            timeout = _timeout(raw, "x-sluicegate-timeout-s")
        raw = headers.get(PRIORITY_HEADER)
        if raw is not None:
            priority = _priority(raw, "x-sluicegate-priority")
    if body is not None:
        if not isinstance(body, dict):
            raise InvalidRequestError(
                "invalid type for 'sluicegate': expected an object", param="sluicegate", code="invalid_type"
            )
        if fallbacks is None and body.get("fallbacks") is not None:
            fallbacks = _fallbacks(body["fallbacks"], "sluicegate.fallbacks")
        if retries is None and body.get("retries") is not None:
            retries = _retries(body["retries"], "sluicegate.retries")
        if timeout is None and body.get("timeout_s") is not None:
            timeout = _timeout(body["timeout_s"], "sluicegate.timeout_s")
        if priority is None and body.get("priority") is not None:
            priority = _priority(body["priority"], "sluicegate.priority")
    if fallbacks is None and retries is None and timeout is None and priority is None:
        return NO_CONTROLS
    return Controls(fallbacks, retries, timeout, priority)
