"""Retry policy: which errors retry, full-jitter backoff bounds, retry-after, and the retry budget."""

from __future__ import annotations

import random

import pytest

from sluicegate.config.schema import RetryBudgetConfig
from sluicegate.errors import (
    InvalidRequestError,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from sluicegate.routing.retry import (
    MAX_RETRY_AFTER_S,
    RetryBudget,
    backoff_s,
    is_retryable,
    retry_after_s,
    retry_delay_s,
)
from tests.unit.routing_support import status


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504, 529])
def test_provider_statuses_that_retry(code: int) -> None:
    """408, 409, 429 and every 5xx from a provider are retried."""
    assert is_retryable(status(code))


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413, 422])
def test_provider_statuses_that_never_retry(code: int) -> None:
    """Any other 4xx is the request's fault and goes to the client as it is."""
    assert not is_retryable(status(code))


def test_transport_failures_retry_and_bad_replies_do_not() -> None:
    """Connect errors and timeouts retry; an unparseable reply, our own 4xx and 429s do not."""
    assert is_retryable(UpstreamConnectionError("refused"))
    assert is_retryable(UpstreamTimeoutError("slow"))
    assert not is_retryable(UpstreamProtocolError("garbage"))
    assert not is_retryable(InvalidRequestError("bad"))
    assert not is_retryable(RateLimitError("queue full"))
    assert not is_retryable(ValueError("a bug"))


def test_full_jitter_backoff_stays_within_its_exponential_bounds() -> None:
    """Each wait is uniform over [0, min(cap, base * 2**n)]: bounded, and not always the maximum."""
    rng = random.Random(7)
    for retry in range(8):
        ceiling = min(2.0, 0.1 * 2**retry)
        waits = [backoff_s(retry, 0.1, 2.0, rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.8 * ceiling and min(waits) < 0.2 * ceiling


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds(headers: dict[str, str], seconds: float | None) -> None:
    """`retry-after-ms` and `retry-after` (seconds) are read; nonsense is ignored."""
    assert retry_after_s(headers) == seconds


def test_retry_after_http_date() -> None:
    """A `retry-after` HTTP date becomes the seconds until then."""
    from email.utils import formatdate
    from time import time

    found = retry_after_s({"retry-after": formatdate(time() + 30, usegmt=True)})
    assert found is not None and 28 <= found <= 31


def test_retry_delay_honours_retry_after_over_backoff() -> None:
    """A provider's retry-after is a floor on the wait; one over the limit means no retry at all."""
    rng = random.Random(1)
    assert retry_delay_s(status(429, **{"retry-after": "2"}), 0, 0.1, 5.0, rng) == 2.0
    assert retry_delay_s(status(503), 0, 0.1, 5.0, rng) <= 0.1  # type: ignore[operator]
    too_long = status(429, **{"retry-after": str(int(MAX_RETRY_AFTER_S) + 1)})
    assert retry_delay_s(too_long, 0, 0.1, 5.0, rng) is None


def test_budget_allows_at_least_the_minimum() -> None:
    """With few requests in flight the budget still allows min_concurrency (3) retries at once."""
    budget = RetryBudget(RetryBudgetConfig())
    budget.requests = 2
    assert [budget.acquire() for _ in range(4)] == [True, True, True, False]
    budget.release()
    assert budget.acquire()


def test_budget_is_twenty_percent_of_in_flight() -> None:
    """With 100 requests in flight, 20 retries may run at once and the 21st is refused."""
    budget = RetryBudget(RetryBudgetConfig())
    budget.requests = 100
    assert sum(budget.acquire() for _ in range(25)) == 20
