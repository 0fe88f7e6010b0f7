"""Routing config: defaults, and semantic errors that quote the path of the bad field."""

from __future__ import annotations

import pytest
import yaml

from sluicegate.config.loader import parse_config
from sluicegate.errors import ConfigError
from sluicegate.routing.fallbacks import is_content_filter, is_context_overflow
from tests.unit.routing_support import status

MODELS = """
models:
  - {name: a, provider: mock}
  - {name: b, provider: mock}
"""


def load(extra: str) -> object:
    return parse_config(yaml.safe_load(MODELS + extra))


def test_defaults_follow_spec_section_8() -> None:
    """Out of the box: 2 retries, 5 failures / 50% of 10 calls eject for 30 s up to 300 s, budget 20%/3."""
    router = parse_config(yaml.safe_load(MODELS)).router
    assert router.retries == 2
    assert (router.ejection.consecutive_failures, router.ejection.failure_rate) == (5, 0.5)
    assert (router.ejection.min_calls, router.ejection.base_s, router.ejection.max_s) == (10, 30, 300)
    assert (router.retry_budget.percent, router.retry_budget.min_concurrency) == (20, 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("router: {fallbacks: {a: [nope]}}", "router.fallbacks.a[0]: no model named 'nope'"),
        ("router: {fallbacks: {nope: [a]}}", "router.fallbacks.nope: no model named 'nope'"),
        ("router: {context_window_fallbacks: {a: [b, x]}}", "router.context_window_fallbacks.a[1]: no model"),
        (
            "router: {content_policy_fallbacks: {a: [a]}}",
            "router.content_policy_fallbacks.a[0]: a model cannot",
        ),
        ("router: {ejection: {failure_rate: 1.5}}", "router.ejection.failure_rate: must be in (0, 1]"),
        ("router: {ejection: {base_s: 0}}", "router.ejection.base_s: must be > 0"),
        ("router: {retry_budget: {percent: 120}}", "router.retry_budget.percent: must be between 0 and 100"),
        ("router: {stream_idle_timeout_s: 0}", "router.stream_idle_timeout_s: must be > 0"),
        ("router: {retry_backoff_s: 2, retry_backoff_max_s: 1}", "router.retry_backoff_max_s: must be >="),
        ("router: {queue_size: -1}", "router.queue_size: must be >= 0"),
    ],
)
def test_router_errors_quote_the_field(extra: str, message: str) -> None:
    """Each bad router setting is a ConfigError starting with its path."""
    with pytest.raises(ConfigError) as info:
        load(extra)
    assert info.value.message.startswith(message), info.value.message


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: c, provider: mock, max_parallel: 0}", "models[2].max_parallel: must be > 0"),
        ("{name: c, provider: mock, context_window: -5}", "models[2].context_window: must be > 0"),
        ("{name: c, provider: mock, health_check: {interval_s: 0}}", "models[2].health_check.interval_s"),
        ("{name: c, provider: mock, health_check: {timeout_s: 1}}", "models[2].health_check.interval_s"),
    ],
)
def test_model_routing_fields_are_checked(entry: str, message: str) -> None:
    """max_parallel, context_window and health_check values are validated with their path."""
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load(MODELS + f"  - {entry}\n"))
    assert info.value.message.startswith(message), info.value.message


def test_full_routing_config_loads() -> None:
    """Every routing field of the docs loads."""
    config = load(
        """router:
  strategy: usage-aware
  retries: 3
  timeout_s: 60
  ttft_timeout_s: 5
  stream_idle_timeout_s: 30
  fallbacks: {a: [b]}
  context_window_fallbacks: {a: [b]}
  content_policy_fallbacks: {a: [b]}
  retry_backoff_s: 0.2
  retry_backoff_max_s: 4
  retry_budget: {percent: 25, min_concurrency: 5}
  ejection: {consecutive_failures: 3, failure_rate: 0.4, min_calls: 20, window_s: 30, base_s: 10, max_s: 60}
  queue_size: 50
  sync_interval_s: 0.5
"""
    )
    assert config.router.retry_budget.min_concurrency == 5  # type: ignore[attr-defined]


def test_content_filter_and_context_overflow_are_recognised() -> None:
    """Provider refusals are told apart by code (and, for context, by the usual wording)."""
    flagged = status(400)
    flagged.code = "content_filter"
    assert is_content_filter(flagged) and not is_context_overflow(flagged)
    assert not is_content_filter(status(500))
    too_long = status(400)
    too_long.code = "context_length_exceeded"
    assert is_context_overflow(too_long)
    assert is_context_overflow(status(400, "prompt is too long: 250000 tokens > 200000 maximum"))
    assert not is_context_overflow(status(400, "temperature must be <= 2"))
