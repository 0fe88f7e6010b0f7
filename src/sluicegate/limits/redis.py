"""The Redis limiter: exact limits and budgets shared by any number of processes and machines.

One `EVALSHA` per admit and one per settle or release (a script is loaded on the first
`NOSCRIPT`, then called by its SHA), each running one Lua script from `_lua.py` that checks and
updates every scope of the call atomically. Calls go through `_resp.py`, one pipelined
connection per limiter, because redis-py's per-command overhead is several times the script's.

Window and expiry times come from Redis's clock; budget periods are named from this process's
clock (periods are hours or longer, so only a call that lands within clock skew of a boundary
can be counted in the neighbouring period).

Every key carries the prefix's hash tag (`{limits}` by default), so all keys a script touches
share one Redis Cluster slot, as multi-key scripts require. The connection itself does not
follow Cluster redirects: point `redis_url` at a standalone primary (replicas and Sentinel for
failover). One Redis core runs about 40,000 of these scripts a second (~23 us each).

Failures: if Redis cannot be reached, `admit` raises `LimiterUnavailableError` (503): limits
fail closed, and the pipeline may choose to catch it and fail open. `settle` and `release`
never raise: the answer has already been sent, the reservation expires on its own, and the
ledger (not Redis) is the record of spend.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import GatewayError
from . import _lua
from ._resp import ConnectionLost, ReplyError, RespConnection, Script
from .base import (
    DEFAULT_RESERVATION_TTL_S,
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
    refuse,
    reserve_nanos,
    to_nanos,
)
from .periods import period_end, period_start

log = logging.getLogger("sluicegate.limits")

DEFAULT_PREFIX = "sg:{limits}:"
# Budget counters outlive their period by a day, so late settles and reports still find them.
_PERIOD_GRACE_S = 86400

_RPM, _TPM, _PARALLEL, _RESERVED, _SPEND = 1, 2, 4, 8, 16


class LimiterUnavailableError(GatewayError):
    status = 503
    default_code = "limiter_unavailable"


class RedisLimiter:
    """The `Limiter` for many processes: state in Redis, every check one atomic script."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 2.0,
    ) -> None:
        # Short timeouts: a hung Redis must turn into a clear 503, not a request that hangs.
        self._conn = RespConnection(url, timeout_s=timeout_s, connect_timeout_s=timeout_s)
        self._prefix = prefix
        self._ttl = reservation_ttl_s
        self._clock = clock
        self._admit = Script(_lua.ADMIT)
        self._settle = Script(_lua.SETTLE)
        self._seed = Script(_lua.SEED)
        self._usage = Script(_lua.USAGE)
        self._keys: dict[str, tuple[str, str, str, str, str]] = {}
        self._ids = itertools.count()
        self._nonce = os.urandom(4).hex()
        self._orphans: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLimiter:
        return cls(url, **kwargs)

    def _scope_keys(self, scope: Scope) -> tuple[str, str, str, str, str]:
        keys = self._keys.get(scope.key)
        if keys is None:
            if len(self._keys) > 100_000:  # deleted keys and teams must not grow this for ever
                self._keys.clear()
            p = f"{self._prefix}{scope.key}"
            keys = self._keys[scope.key] = (f"{p}:rq", f"{p}:tk", f"{p}:tv", f"{p}:pl", f"{p}:b:")
        return keys

    def _period_keys(self, scope: Scope, start: int) -> tuple[str, str]:
        base = self._scope_keys(scope)[4]
        tag = f"{scope.budget_period or 'life'}:{start}"
        return f"{base}r:{tag}", f"{base}g:{tag}"

    @staticmethod
    def _expire_at(scope: Scope, start: int) -> int:
        end = period_end(scope.budget_period, start)
        return 0 if end is None else end + _PERIOD_GRACE_S

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
        ttl = self._ttl if ttl_s is None else ttl_s
        aid = f"{self._nonce}-{next(self._ids):x}"
        est_tokens = max(0, int(est_tokens))
        active = active_scopes(scopes)
        if not active:
            return Admission(request_id, aid, (), est_tokens, est_cost_usd, now + ttl)
        est_n = reserve_nanos(max(0.0, est_cost_usd))
        keys: list[str] = []
        args: list[Any] = [aid, est_tokens, est_n, max(1, round(ttl * 1000)), len(active)]
        state: list[tuple[int, str, str]] = []
        for scope in active:
            rq, tk, tv, pl, _ = self._scope_keys(scope)
            flags = (
                (_RPM if scope.rpm is not None else 0)
                | (_TPM if scope.tpm is not None else 0)
                | (_PARALLEL if scope.max_parallel is not None else 0)
                | (_SPEND if scope.tracks_spend else 0)
            )
            budget, expire_at = -1, 0
            br = bg = pl  # unused without a budget, but must hash to the same slot
            if scope.budget_usd is not None:
                start = period_start(scope.budget_period, now)
                br, bg = self._period_keys(scope, start)
                budget, expire_at = to_nanos(scope.budget_usd), self._expire_at(scope, start)
                flags |= _RESERVED
            keys += (rq, tk, tv, pl, br, bg)
            args += (opt(scope.rpm), opt(scope.tpm), opt(scope.max_parallel), budget, expire_at)
            state.append((flags, br, bg))
        admission = Admission(request_id, aid, active, est_tokens, est_cost_usd, now + ttl, [], state)

        def orphaned(reply: Any) -> None:
            # The caller was cancelled (client gone) after the script ran: give the reservation back.
            if isinstance(reply, list) and reply and reply[0] == 0:
                task = asyncio.ensure_future(self.release(admission))
                self._orphans.add(task)
                task.add_done_callback(self._orphans.discard)

        try:
            reply = await self._conn.run(self._admit, keys, args, orphaned)
        except (ConnectionLost, ReplyError) as exc:
            raise LimiterUnavailableError(f"rate limiter unavailable: {exc}") from exc
        j = 1 if reply[0] == 0 else 5
        rows: list[Row] = [(reply[j], reply[j + 1], -1, -1), (-1, -1, reply[j + 2], reply[j + 3])]
        if reply[0] != 0:
            refusal = Refusal(reply[0], reply[1] - 1, reply[2], reply[3], reply[4])
            raise refuse(refusal, active, rows, est_tokens, est_n, now)
        admission.headers = limit_headers(rows)
        return admission

    async def settle(self, admission: Admission, tokens: int, cost_usd: float) -> SettleResult:
        return await self._finish(admission, max(0, int(tokens)), max(0, to_nanos(cost_usd)), False)

    async def release(self, admission: Admission) -> None:
        await self._finish(admission, 0, 0, True)

    async def _finish(self, admission: Admission, tokens: int, cost: int, release: bool) -> SettleResult:
        if admission.done:
            return SettleResult()
        admission.done = True
        if not admission.scopes:
            return SettleResult()
        now = self._clock()
        keys: list[str] = []
        args: list[Any] = [admission.id, tokens, cost, int(release), admission.tokens, len(admission.scopes)]
        starts: list[int] = []
        for scope, (flags, br, bg) in zip(admission.scopes, admission.state, strict=True):
            rq, tk, tv, pl, _ = self._scope_keys(scope)
            start = period_start(scope.budget_period, now)
            current = self._period_keys(scope, start)[1] if scope.tracks_spend else pl
            keys += (rq, tk, tv, pl, br, bg, current)
            soft = scope.soft_budget_usd
            args += (flags, -1 if soft is None else to_nanos(soft), self._expire_at(scope, start))
            starts.append(start)
        try:
            reply = await self._conn.run(self._settle, keys, args)
        except (ConnectionLost, ReplyError) as exc:
            log.warning(
                "limiter settle failed; reservations will expire",
                extra={"request_id": admission.request_id, "error": str(exc)},
            )
            return SettleResult()
        if not reply:
            return SettleResult()
        alerts = tuple(
            SoftBudgetAlert(admission.scopes[i - 1], spent / 1e9, starts[i - 1])
            for i, spent in zip(reply[::2], reply[1::2], strict=True)
        )
        return SettleResult(alerts)

    async def seed_spend(self, scope: Scope, period_start: int, spent_usd: float) -> None:
        soft = -1 if scope.soft_budget_usd is None else to_nanos(scope.soft_budget_usd)
        expire_at = self._expire_at(scope, period_start)
        key = self._period_keys(scope, period_start)[1]
        await self._call(self._seed, [key], [to_nanos(spent_usd), soft, expire_at])

    async def usage(self, scope: Scope) -> ScopeUsage:
        rq, tk, tv, pl, _ = self._scope_keys(scope)
        start = period_start(scope.budget_period, self._clock())
        br, bg = self._period_keys(scope, start)
        reply = await self._call(self._usage, [rq, tk, tv, pl, br, bg], [])
        return ScopeUsage(
            requests=reply[0],
            tokens=reply[1],
            in_flight=reply[2],
            spent_usd=reply[3] / 1e9,
            reserved_usd=reply[4] / 1e9,
            period_start=start,
        )

    async def _call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._conn.run(script, keys, args)
        except (ConnectionLost, ReplyError) as exc:
            raise LimiterUnavailableError(f"rate limiter unavailable: {exc}") from exc

    async def close(self) -> None:
        if self._orphans:
            await asyncio.gather(*self._orphans, return_exceptions=True)
        await self._conn.close()
