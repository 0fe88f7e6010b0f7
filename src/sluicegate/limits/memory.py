"""The in-process limiter: exact limits for one worker without Redis.

Every method runs to completion without awaiting, so the event loop itself makes each
check-and-reserve atomic: no locks. Work per scope is O(1) amortised: a window entry is appended
once and evicted once; parallel slots and budget reservations are dict entries removed at settle,
and expired ones are swept only when a scope is full (or its table has doubled since the last
sweep), which keeps abandoned reservations from either pinning capacity or growing without bound.
Semantics match `redis.py` exactly (see base.py); tests/integration/test_limits.py runs on both.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence

from .base import (
    BUDGET,
    DEFAULT_RESERVATION_TTL_S,
    PARALLEL,
    REQUESTS,
    TOKENS,
    TOO_LARGE,
    WINDOW_MS,
    WINDOW_S,
    Admission,
    Refusal,
    Row,
    Scope,
    ScopeUsage,
    SettleResult,
    SoftBudgetAlert,
    active_scopes,
    limit_headers,
    opt,
    pick,
    refuse,
    reserve_nanos,
    to_nanos,
)
from .periods import period_start

# How far back a refused call looks for the moment enough of the window ages out; past that the
# answer is "the whole window" (60 s), which is always enough since one call never exceeds a limit.
_SCAN = 256


class _Entry:
    __slots__ = ("live", "request", "tokens", "ts")

    def __init__(self, ts: float, tokens: int, request: bool) -> None:
        self.ts = ts
        self.tokens = tokens
        self.request = request
        self.live = True


class _Window:
    """One scope's log of the last 60 s: admitted requests and the tokens charged to them."""

    __slots__ = ("entries", "requests", "tokens")

    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()
        self.requests = 0
        self.tokens = 0

    def evict(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0].ts <= cutoff:
            self.drop(entries.popleft())

    def drop(self, entry: _Entry) -> None:
        if entry.live:
            entry.live = False
            self.requests -= entry.request
            self.tokens -= entry.tokens

    def wait_requests(self, rpm: int, now: float) -> int:
        need = self.requests + 1 - rpm  # admitted requests that must age out first
        seen = 0
        for i, entry in enumerate(self.entries):
            if i >= _SCAN:
                break
            if entry.live and entry.request:
                seen += 1
                if seen >= need:
                    return math.ceil((entry.ts + WINDOW_S - now) * 1000)
        return WINDOW_MS

    def wait_tokens(self, tpm: int, est: int, now: float) -> int:
        need = self.tokens + est - tpm
        freed = 0
        for i, entry in enumerate(self.entries):
            if i >= _SCAN:
                break
            if entry.live:
                freed += entry.tokens
                if freed >= need:
                    return math.ceil((entry.ts + WINDOW_S - now) * 1000)
        return WINDOW_MS


class _Slots:
    """Calls in flight for one scope's max_parallel: admission id -> reservation expiry."""

    __slots__ = ("inflight",)

    def __init__(self) -> None:
        self.inflight: dict[str, float] = {}

    def sweep(self, now: float) -> None:
        for aid in [a for a, exp in self.inflight.items() if exp <= now]:
            del self.inflight[aid]


class _Budget:
    """One scope's spend in one period, and the reservations of its calls in flight."""

    __slots__ = ("alerted", "period", "reservations", "reserved", "spent", "start", "sweep_at")

    def __init__(self, period: str | None, start: int) -> None:
        self.period = period
        self.start = start
        self.spent = 0  # nanos
        self.reserved = 0
        self.reservations: dict[str, tuple[int, float]] = {}  # admission id -> (nanos, expiry)
        self.alerted = False
        self.sweep_at = 64

    def sweep(self, now: float) -> None:
        for aid in [a for a, (_, exp) in self.reservations.items() if exp <= now]:
            self.reserved -= self.reservations.pop(aid)[0]
        self.sweep_at = max(64, 2 * len(self.reservations))


class MemoryLimiter:
    """The `Limiter` for a single process (no Redis configured)."""

    def __init__(
        self,
        *,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = reservation_ttl_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, _Slots] = {}
        self._budgets: dict[str, _Budget] = {}
        self._ids = itertools.count()
        self._nonce = os.urandom(4).hex()

    def _budget(self, scope: Scope, now: float) -> _Budget:
        """The scope's budget state for the period containing `now` (a new period starts at zero)."""
        start = period_start(scope.budget_period, now)
        budget = self._budgets.get(scope.key)
        if budget is None or budget.start != start or budget.period != scope.budget_period:
            # Calls admitted in the old period still hold a reference to it and release there.
            budget = self._budgets[scope.key] = _Budget(scope.budget_period, start)
        return budget

    async def admit(
        self,
        request_id: str,
        scopes: Sequence[Scope],
        est_tokens: int,
        est_cost_usd: float,
        *,
        ttl_s: float | None = None,
    ) -> Admission:
        now = self._clock()
        expires = now + (self._ttl if ttl_s is None else ttl_s)
        aid = f"{self._nonce}-{next(self._ids):x}"
        est_tokens = max(0, int(est_tokens))
        active = active_scopes(scopes)
        if not active:
            return Admission(request_id, aid, (), est_tokens, est_cost_usd, expires)
        est_n = reserve_nanos(max(0.0, est_cost_usd))
        cutoff = now - WINDOW_S
        refusal: Refusal | None = None
        rows: list[Row] = []
        found: list[tuple[_Window | None, _Slots | None, _Budget | None]] = []
        for i, scope in enumerate(active):
            window = slots = budget = None
            left_r = left_t = -1
            if scope.tracks_window:
                window = self._windows.get(scope.key)
                if window is None:
                    window = self._windows[scope.key] = _Window()
                window.evict(cutoff)
                if scope.rpm is not None:
                    left_r = scope.rpm - window.requests
                    if window.requests + 1 > scope.rpm:
                        refusal = pick(refusal, Refusal(REQUESTS, i, window.wait_requests(scope.rpm, now)))
                if scope.tpm is not None:
                    left_t = scope.tpm - window.tokens
                    if est_tokens > scope.tpm:
                        refusal = pick(refusal, Refusal(TOO_LARGE, i))
                    elif window.tokens + est_tokens > scope.tpm:
                        wait = window.wait_tokens(scope.tpm, est_tokens, now)
                        refusal = pick(refusal, Refusal(TOKENS, i, wait))
            if scope.max_parallel is not None:
                slots = self._slots.get(scope.key)
                if slots is None:
                    slots = self._slots[scope.key] = _Slots()
                if len(slots.inflight) >= scope.max_parallel:
                    slots.sweep(now)
                    if len(slots.inflight) >= scope.max_parallel:
                        refusal = pick(refusal, Refusal(PARALLEL, i, 1000))
            if scope.budget_usd is not None:
                budget = self._budget(scope, now)
                if len(budget.reservations) >= budget.sweep_at:
                    budget.sweep(now)
                limit = to_nanos(scope.budget_usd)
                if _over(budget, est_n, limit):
                    budget.sweep(now)
                    if _over(budget, est_n, limit):
                        refusal = pick(refusal, Refusal(BUDGET, i, 0, budget.spent, budget.reserved))
            rows.append((opt(scope.rpm), left_r, opt(scope.tpm), left_t))
            found.append((window, slots, budget))
        if refusal is not None:
            raise refuse(refusal, active, rows, est_tokens, est_n, now)

        state = []
        for window, slots, budget in found:
            entry = None
            if window is not None:
                entry = _Entry(now, est_tokens, True)
                window.entries.append(entry)
                window.requests += 1
                window.tokens += est_tokens
            if slots is not None:
                slots.inflight[aid] = expires
            if budget is not None:
                budget.reservations[aid] = (est_n, expires)
                budget.reserved += est_n
            state.append((window, entry, slots, budget))
        after = [
            (r[0], r[1] - 1 if r[0] >= 0 else -1, r[2], r[3] - est_tokens if r[2] >= 0 else -1) for r in rows
        ]
        headers = limit_headers(after)
        return Admission(request_id, aid, active, est_tokens, est_cost_usd, expires, headers, state)

    async def settle(self, admission: Admission, tokens: int, cost_usd: float) -> SettleResult:
        if admission.done:
            return SettleResult()
        admission.done = True
        if not admission.scopes:
            return SettleResult()
        now = self._clock()
        tokens = max(0, int(tokens))
        cost = max(0, to_nanos(cost_usd))
        alerts: list[SoftBudgetAlert] = []
        for scope, (window, entry, slots, budget) in zip(admission.scopes, admission.state, strict=True):
            if entry is not None:
                window.evict(now - WINDOW_S)  # so "live" means admitted less than 60 s ago
                if entry.live:
                    window.tokens += tokens - entry.tokens
                    entry.tokens = tokens
                elif tokens > entry.tokens:
                    # The call outlived the window; tokens beyond its reservation count from now.
                    window.entries.append(_Entry(now, tokens - entry.tokens, False))
                    window.tokens += tokens - entry.tokens
            if slots is not None:
                slots.inflight.pop(admission.id, None)
            if budget is not None:
                held = budget.reservations.pop(admission.id, None)
                if held is not None:
                    budget.reserved -= held[0]
            if cost > 0 and scope.tracks_spend:
                current = self._budget(scope, now)
                current.spent += cost
                soft = scope.soft_budget_usd
                if soft is not None and not current.alerted and current.spent >= to_nanos(soft):
                    current.alerted = True
                    alerts.append(SoftBudgetAlert(scope, current.spent / 1e9, current.start))
        return SettleResult(tuple(alerts))

    async def release(self, admission: Admission) -> None:
        if admission.done:
            return
        admission.done = True
        for window, entry, slots, budget in admission.state or ():
            if entry is not None:
                window.drop(entry)
            if slots is not None:
                slots.inflight.pop(admission.id, None)
            if budget is not None:
                held = budget.reservations.pop(admission.id, None)
                if held is not None:
                    budget.reserved -= held[0]

    async def seed_spend(self, scope: Scope, period_start: int, spent_usd: float) -> None:
        current = self._budget(scope, self._clock())
        if current.start != period_start:
            return  # only the current period is kept in memory
        current.spent = max(current.spent, to_nanos(spent_usd))
        # Spend already past the soft budget was alerted on before the restart that needs seeding.
        if scope.soft_budget_usd is not None and current.spent >= to_nanos(scope.soft_budget_usd):
            current.alerted = True

    async def usage(self, scope: Scope) -> ScopeUsage:
        now = self._clock()
        window = self._windows.get(scope.key)
        if window is not None:
            window.evict(now - WINDOW_S)
        slots = self._slots.get(scope.key)
        if slots is not None:
            slots.sweep(now)
        budget = self._budget(scope, now)
        budget.sweep(now)
        return ScopeUsage(
            requests=window.requests if window else 0,
            tokens=window.tokens if window else 0,
            in_flight=len(slots.inflight) if slots else 0,
            spent_usd=budget.spent / 1e9,
            reserved_usd=budget.reserved / 1e9,
            period_start=budget.start,
        )

    async def close(self) -> None:
        return None


def _over(budget: _Budget, est: int, limit: int) -> bool:
    committed = budget.spent + budget.reserved
    return committed >= limit or committed + est > limit
