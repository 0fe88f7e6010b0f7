"""Budget periods: where each one starts and ends, in UTC, on boundaries every process agrees on.

Periods are fixed calendar slots, not rolling windows, so "this period's spend" is the same number
in every process, in the ledger and in the admin API, and a reset happens at a predictable moment:

    1h   on the hour (UTC)
    1d   at 00:00 UTC
    7d   at 00:00 UTC on Mondays (ISO weeks)
    30d  every 30 days counted from the Unix epoch (1970-01-01 00:00 UTC); not calendar months,
         so every period has the same length and the same budget buys the same time
    None lifetime: one period starting at 0 that never ends
"""

from __future__ import annotations

PERIOD_SECONDS: dict[str, int] = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

# 1970-01-01 was a Thursday; the first Monday after the epoch is four days later.
_FIRST_MONDAY = 4 * 86400


def check_period(period: str | None) -> None:
    if period is not None and period not in PERIOD_SECONDS:
        raise ValueError(f"budget_period must be one of {', '.join(PERIOD_SECONDS)} or null, got {period!r}")


def period_start(period: str | None, now: float) -> int:
    """Unix time (s) at which the period containing `now` began; 0 for lifetime budgets."""
    if period is None:
        return 0
    length = PERIOD_SECONDS[period]
    offset = _FIRST_MONDAY if period == "7d" else 0
    return int((int(now) - offset) // length * length + offset)


def period_end(period: str | None, start: int) -> int | None:
    """Unix time (s) at which the period beginning at `start` ends; None for lifetime budgets."""
    if period is None:
        return None
    return start + PERIOD_SECONDS[period]
