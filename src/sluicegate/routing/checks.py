"""Semantic checks of the routing config (`router:` and the routing fields of `models[]`).

Run by the config loader after the schema; each error quotes the path of the bad field
(STYLE rule 12), e.g. `router.fallbacks.gpt-4o[1]: no model named 'gpt5' is configured`.
"""

from __future__ import annotations

from ..config.schema import Config
from ..errors import ConfigError


def _positive(path: str, value: float | int | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{path}: must be > 0, got {value:g}")


def check_router(config: Config) -> None:
    names = {entry.name for entry in config.models}
    for index, entry in enumerate(config.models):
        path = f"models[{index}]"
        _positive(f"{path}.max_parallel", entry.max_parallel)
        _positive(f"{path}.context_window", entry.context_window)
        check = entry.health_check
        if check is not None:
            _positive(f"{path}.health_check.interval_s", check.interval_s)
            _positive(f"{path}.health_check.timeout_s", check.timeout_s)
            _positive(f"{path}.health_check.unhealthy_threshold", check.unhealthy_threshold)
    router = config.router
    if router.retries < 0:
        raise ConfigError(f"router.retries: must be >= 0, got {router.retries}")
    for field in (
        "timeout_s",
        "connect_timeout_s",
        "ttft_timeout_s",
        "stream_idle_timeout_s",
        "sync_interval_s",
    ):
        _positive(f"router.{field}", getattr(router, field))
    if router.retry_backoff_s < 0 or router.retry_backoff_max_s < router.retry_backoff_s:
        raise ConfigError(
            "router.retry_backoff_max_s: must be >= retry_backoff_s >= 0, got "
            f"{router.retry_backoff_max_s:g} and {router.retry_backoff_s:g}"
        )
    if router.queue_size < 0:
        raise ConfigError(f"router.queue_size: must be >= 0, got {router.queue_size}")
    budget = router.retry_budget
    if not 0 <= budget.percent <= 100:
        raise ConfigError(f"router.retry_budget.percent: must be between 0 and 100, got {budget.percent:g}")
    if budget.min_concurrency < 0:
        raise ConfigError(f"router.retry_budget.min_concurrency: must be >= 0, got {budget.min_concurrency}")
    ejection = router.ejection
    for field in ("consecutive_failures", "min_calls", "window_s", "base_s", "max_s"):
        _positive(f"router.ejection.{field}", getattr(ejection, field))
    if not 0 < ejection.failure_rate <= 1:
        raise ConfigError(f"router.ejection.failure_rate: must be in (0, 1], got {ejection.failure_rate:g}")
    for table in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for group, targets in getattr(router, table).items():
            if group not in names:
                raise ConfigError(f"router.{table}.{group}: no model named {group!r} is configured")
            for i, target in enumerate(targets):
                if target not in names:
                    raise ConfigError(f"router.{table}.{group}[{i}]: no model named {target!r} is configured")
                if target == group:
                    raise ConfigError(f"router.{table}.{group}[{i}]: a model cannot fall back to itself")
