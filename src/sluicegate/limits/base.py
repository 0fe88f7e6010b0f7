"""The contract of the rate-limit and budget engine: what the pipeline passes in and gets back.

A call is counted against several `Scope`s at once (its key, user and team, the model, the
deployment). `Limiter.admit` checks every scope's rpm, tpm, max_parallel and budget together
and reserves all of them or none; `settle` swaps the reservation for what the call really used;
`release` gives everything back when a call failed before using anything. Two backends
implement it with identical semantics: `memory.py` (one process) and `redis.py` (any number of
processes and machines). Both pass one test suite (tests/integration/test_limits.py).

Semantics shared by both backends:

- rpm/tpm: a sliding-window log over the last 60 s. A request is admitted only if the requests
  (tokens) admitted in the 60 s before it, plus this one, stay within the limit, so no 60 s
  interval ever holds more than the limit: exact, not a bucket approximation. Tokens are
  reserved at admission (the caller's estimate) and replaced by real usage at settle.
- max_parallel: calls admitted and not yet settled or released.
- budgets: spend in the current UTC period (periods.py) plus the worst-case cost of every call
  in flight must stay within `budget_usd`, so concurrent calls cannot overrun a budget unless a
  call costs more than its reservation (the overshoot bound is the sum of those differences).
  Money is counted in integer nano-dollars so shared counters add exactly.
- every reservation expires (`ttl_s`, default request timeout + margin): a crashed process
  never pins parallel slots or budget. Window entries need no expiry: they age out in 60 s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import QuotaExceededError, RateLimitError
from .periods import check_period, period_end, period_start

WINDOW_S = 60
WINDOW_MS = WINDOW_S * 1000
# A reservation outlives the longest call the router allows (600 s by default) with a margin.
DEFAULT_RESERVATION_TTL_S = 660.0
NANOS_PER_USD = 1_000_000_000

# Refusal codes, ordered by precedence when several scopes refuse at once (see `pick`).
REQUESTS, TOKENS, PARALLEL, TOO_LARGE, BUDGET = 1, 2, 3, 4, 5

SCOPE_KINDS = frozenset({"key", "user", "team", "model", "deployment"})


# Lua numbers are doubles: integers are exact up to 2**53 nano-dollars, about 9 million USD.
MAX_USD = 9_000_000.0


def to_nanos(usd: float) -> int:
    if not usd > 0:  # also NaN
        return 0
    return round(min(usd, MAX_USD) * NANOS_PER_USD)


def reserve_nanos(usd: float) -> int:
    # Reservations round up: a reservation must never be smaller than the cost it stands for.
    if not usd > 0:
        return 0
    return math.ceil(min(usd, MAX_USD) * NANOS_PER_USD)


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing a call is counted against, with its limits (None = no limit)."""

    kind: str  # key | user | team | model | deployment
    id: str
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str | None = None  # 1h | 1d | 7d | 30d | None = lifetime
    soft_budget_usd: float | None = None
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise ValueError(f"scope kind must be one of {', '.join(sorted(SCOPE_KINDS))}, got {self.kind!r}")
        for name in ("rpm", "tpm", "max_parallel", "budget_usd", "soft_budget_usd"):
            value = getattr(self, name)
            if value is not None and (value < 0 or value != value):  # NaN fails both comparisons
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        check_period(self.budget_period)
        object.__setattr__(self, "key", f"{self.kind}:{self.id}")

    @property
    def tracks_window(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    @property
    def tracks_spend(self) -> bool:
        return self.budget_usd is not None or self.soft_budget_usd is not None

    @property
    def active(self) -> bool:
        return self.tracks_window or self.max_parallel is not None or self.tracks_spend


@dataclass(slots=True, eq=False)
class Admission:
    """What `admit` reserved; hand it back to `settle` or `release` exactly once."""

    request_id: str
    id: str  # unique per admission: request ids come from callers and may repeat
    scopes: tuple[Scope, ...]
    tokens: int
    cost_usd: float
    expires_at: float
    # x-ratelimit-* of the tightest scope, to add to the successful response.
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    state: Any = None  # the backend's handle on what it reserved
    done: bool = False


@dataclass(frozen=True, slots=True)
class SoftBudgetAlert:
    """A scope whose spend crossed its soft budget for the first time in this period."""

    scope: Scope
    spent_usd: float
    period_start: int  # Unix seconds; 0 for lifetime budgets


@dataclass(frozen=True, slots=True)
class SettleResult:
    soft_alerts: tuple[SoftBudgetAlert, ...] = ()


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """A scope's counters right now (for tests, the admin API and seeding checks)."""

    requests: int  # admitted in the last 60 s
    tokens: int  # reserved or used in the last 60 s
    in_flight: int
    spent_usd: float  # settled spend in the current period
    reserved_usd: float  # worst-case cost of calls in flight in the current period
    period_start: int


class Limiter(Protocol):
    async def admit(
        self,
        request_id: str,
        scopes: Sequence[Scope],
        est_tokens: int,
        est_cost_usd: float,
        *,
        ttl_s: float | None = None,
    ) -> Admission: ...

    async def settle(self, admission: Admission, tokens: int, cost_usd: float) -> SettleResult: ...

    async def release(self, admission: Admission) -> None: ...

    async def seed_spend(self, scope: Scope, period_start: int, spent_usd: float) -> None: ...

    async def usage(self, scope: Scope) -> ScopeUsage: ...

    async def close(self) -> None: ...


# --- shared by both backends: one verdict format, one way to turn it into headers or an error ---

# Per scope: (rpm, requests remaining, tpm, tokens remaining); -1 where the scope sets no limit.
Row = tuple[int, int, int, int]


def limit_headers(rows: Sequence[Row]) -> list[tuple[bytes, bytes]]:
    """x-ratelimit-{limit,remaining}-{requests,tokens} of the scope with the least left in each."""
    headers: list[tuple[bytes, bytes]] = []
    best_r: Row | None = None
    best_t: Row | None = None
    for row in rows:
        if row[0] >= 0 and (best_r is None or row[1] < best_r[1]):
            best_r = row
        if row[2] >= 0 and (best_t is None or row[3] < best_t[3]):
            best_t = row
    if best_r is not None:
        headers.append((b"x-ratelimit-limit-requests", str(best_r[0]).encode()))
        headers.append((b"x-ratelimit-remaining-requests", str(max(0, best_r[1])).encode()))
    if best_t is not None:
        headers.append((b"x-ratelimit-limit-tokens", str(best_t[2]).encode()))
        headers.append((b"x-ratelimit-remaining-tokens", str(max(0, best_t[3])).encode()))
    return headers


@dataclass(slots=True)
class Refusal:
    code: int
    index: int  # which scope refused
    wait_ms: int = 0
    spent: int = 0  # nanos, budget refusals only
    reserved: int = 0


def pick(current: Refusal | None, new: Refusal) -> Refusal:
    """The refusal to report: a budget beats everything (retrying cannot help), then the longest wait."""
    if current is None:
        return new
    if max(current.code, new.code) >= TOO_LARGE:
        return new if new.code > current.code else current
    return new if new.wait_ms > current.wait_ms else current


def refuse(
    refusal: Refusal,
    scopes: Sequence[Scope],
    rows: Sequence[Row],
    est_tokens: int,
    est_nanos: int,
    now: float,
) -> Exception:
    """The 429 to raise for `refusal`, with retry-after and the x-ratelimit-* headers."""
    scope = scopes[refusal.index]
    who = f"{scope.kind} '{scope.id}'"
    if refusal.code == BUDGET:
        spent = refusal.spent / NANOS_PER_USD
        reserved = refusal.reserved / NANOS_PER_USD
        period = scope.budget_period
        message = (
            f"budget exhausted: {who} has spent ${spent:.4f}"
            + (f" (plus ${reserved:.4f} reserved by calls in flight)" if reserved > 0 else "")
            + f" of its ${scope.budget_usd:.2f} {period + ' ' if period else 'lifetime '}budget"
            + (f"; this call may cost up to ${est_nanos / NANOS_PER_USD:.4f}" if est_nanos > 0 else "")
        )
        if period is not None:
            end = period_end(period, period_start(period, now))
            assert end is not None
            message += f"; the budget resets at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end))}"
        return QuotaExceededError(message, headers=_header_dict(rows))
    headers = _header_dict(rows)
    if refusal.code == TOO_LARGE:
        headers["x-should-retry"] = "false"  # waiting cannot make the request fit
        return RateLimitError(
            f"request too large: about {est_tokens} tokens exceed the {scope.tpm} tokens-per-minute "
            f"limit of {who}; send a smaller prompt or lower max_tokens",
            headers=headers,
        )
    wait_s = max(refusal.wait_ms, 1) / 1000
    headers["retry-after"] = str(max(1, math.ceil(wait_s)))
    headers["retry-after-ms"] = str(max(1, refusal.wait_ms))
    if refusal.code == REQUESTS:
        message = f"rate limit exceeded: {who} allows {scope.rpm} requests per minute"
    elif refusal.code == TOKENS:
        message = (
            f"rate limit exceeded: {who} allows {scope.tpm} tokens per minute and this call "
            f"reserves about {est_tokens}"
        )
    else:
        message = f"too many calls in flight: {who} allows {scope.max_parallel} at a time"
    return RateLimitError(f"{message}; retry in {wait_s:.1f} s", headers=headers)


def _header_dict(rows: Sequence[Row]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in limit_headers(rows)}


def active_scopes(scopes: Sequence[Scope]) -> tuple[Scope, ...]:
    """The scopes that set any limit, each once; the others need no bookkeeping at all."""
    out: dict[str, Scope] = {}
    for scope in scopes:
        if scope.active and scope.key not in out:
            out[scope.key] = scope
    return tuple(out.values())


def opt(value: int | float | None) -> int:
    return -1 if value is None else int(value)
