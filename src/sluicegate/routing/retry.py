"""Retry policy (SPEC §8): what may be retried, how long to wait, and the retry budget.

- Retryable: connect errors, timeouts, and provider statuses 408, 409, 429 and 5xx (529 too).
  Never another 4xx (the request itself is wrong), never a reply we could not parse, and never
  anything after the first byte reached the client (the dispatch loop enforces that).
- Waiting: moving to a deployment this request has not tried yet is immediate (failover). Trying a
  deployment again waits a full-jitter exponential backoff, `uniform(0, min(cap, base * 2**n))`,
  or the provider's `retry-after-ms` / `retry-after` when that is longer. A retry-after over
  `MAX_RETRY_AFTER_S`, or a wait that would overrun the total timeout, ends the retries instead.
- Budget (Envoy's retry budget): re-attempts on the same deployment in flight at once are capped
  at max(min_concurrency, percent% of the requests in flight), so a struggling provider is not
  buried under retries. Failover to a fresh deployment is not counted: outlier ejection bounds it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from time import time

from ..config.schema import RetryBudgetConfig
from ..errors import GatewayError, UpstreamStatusError

# Like the OpenAI SDK: a provider asking for a longer pause is not waited for.
MAX_RETRY_AFTER_S = 60.0


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, UpstreamStatusError):
        return error.is_retryable
    return isinstance(error, GatewayError) and error.retryable


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a provider asked for, in seconds: `retry-after-ms`, else `retry-after` (seconds or date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def backoff_s(retry: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform over [0, min(cap, base * 2**retry)] (retry counts from 0)."""
    ceiling = min(cap_s, base_s * (2 ** min(retry, 30)))
    return (rng or random).uniform(0.0, ceiling)


def retry_delay_s(
    error: BaseException, retry: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float | None:
    """How long to wait before trying the same deployment again; None = do not retry it."""
    wait = backoff_s(retry, base_s, cap_s, rng)
    hint = retry_after_s(error.headers) if isinstance(error, GatewayError) else None
    if hint is not None:
        if hint > MAX_RETRY_AFTER_S:
            return None
        wait = max(wait, hint)
    return wait


class RetryBudget:
    """Counts requests and same-deployment retries in flight in this process."""

    __slots__ = ("minimum", "percent", "requests", "retries")

    def __init__(self, config: RetryBudgetConfig) -> None:
        self.percent = config.percent / 100.0
        self.minimum = config.min_concurrency
        self.requests = 0
        self.retries = 0

    def acquire(self) -> bool:
        if self.retries >= max(self.minimum, self.percent * self.requests):
            return False
        self.retries += 1
        return True

    def release(self) -> None:
        self.retries -= 1
