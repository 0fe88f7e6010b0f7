"""Rate limits and budgets: reserve at admission, settle with real usage (see base.py).

`make_limiter` picks the backend: Redis when a `redis_url` is configured (exact across processes
and machines), otherwise the in-process one (exact for a single worker).
"""

from __future__ import annotations

from typing import Any

from .base import (
    Admission,
    Limiter,
    Scope,
    ScopeUsage,
    SettleResult,
    SoftBudgetAlert,
)
from .memory import MemoryLimiter

__all__ = [
    "Admission",
    "Limiter",
    "MemoryLimiter",
    "Scope",
    "ScopeUsage",
    "SettleResult",
    "SoftBudgetAlert",
    "make_limiter",
]


def make_limiter(redis_url: str | None, **kwargs: Any) -> Limiter:
    """The limiter for a config: `RedisLimiter` if `redis_url` is set, else `MemoryLimiter`."""
    if redis_url:
        from .redis import RedisLimiter  # imported only when used: redis-py costs start-up time

        return RedisLimiter.from_url(redis_url, **kwargs)
    return MemoryLimiter(**kwargs)
