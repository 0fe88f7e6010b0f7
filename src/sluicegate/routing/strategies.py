"""Load-balancing strategies: which deployment of a group takes the next attempt (SPEC §3).

Every strategy answers `pick(candidates, now, tried, strict, streaming)`: the best candidate that
is not in `tried` (deployments this request already used) and, when `strict`, is available (not
ejected, not failing health checks); None when no candidate qualifies. The group relaxes those
conditions itself when nothing qualifies (see ModelGroup.choose). Ties rotate, so equal
deployments share the load instead of the first one taking it all.

- round-robin: in turn.
- weighted: smooth weighted round-robin (nginx's): exact proportions, evenly interleaved.
- least-busy: fewest calls in flight in this process.
- least-latency: lowest EWMA of latency (of time to first token for streams) times (in-flight + 1),
  so a fast deployment that starts queueing sheds load; unmeasured deployments are tried first.
- lowest-cost: cheapest input + output price per million tokens; unknown prices last.
- usage-aware: most headroom under the deployment's own `rpm`/`tpm` over the last minute
  (every instance's usage when Redis is configured); deployments without limits have full headroom.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from .deployment import EWMA_STALE_S, Deployment


def _ok(d: Deployment, now: float, tried: Collection[Deployment] | None, strict: bool) -> bool:
    if d.disabled or (tried is not None and d in tried):
        return False
    return not strict or d.available(now)


class Strategy(Protocol):
    def pick(
        self,
        candidates: Sequence[Deployment],
        now: float,
        tried: Collection[Deployment] | None,
        strict: bool,
        streaming: bool,
    ) -> Deployment | None: ...


class _Rotating:
    """Shared tie-breaking: scanning starts one position later on every pick."""

    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn = 0

    def _start(self, n: int) -> int:
        turn = self._turn
        self._turn = turn + 1
        return turn % n


class RoundRobin(_Rotating):
    __slots__ = ()

    def pick(
        self,
        candidates: Sequence[Deployment],
        now: float,
        tried: Collection[Deployment] | None,
        strict: bool,
        streaming: bool,
    ) -> Deployment | None:
        n = len(candidates)
        start = self._start(n)
        for k in range(n):
            d = candidates[(start + k) % n]
            if _ok(d, now, tried, strict):
                return d
        return None


class _Scored(_Rotating):
    """Lowest score wins; ties take turns (the n-th pick goes to the (n mod ties)-th tied candidate)."""

    __slots__ = ()

    def score(self, d: Deployment, now: float, streaming: bool) -> float:
        raise NotImplementedError

    def pick(
        self,
        candidates: Sequence[Deployment],
        now: float,
        tried: Collection[Deployment] | None,
        strict: bool,
        streaming: bool,
    ) -> Deployment | None:
        best: Deployment | None = None
        best_score = 0.0
        ties = 0
        for d in candidates:
            if not _ok(d, now, tried, strict):
                continue
            s = self.score(d, now, streaming)
            if best is None or s < best_score:
                best, best_score, ties = d, s, 1
            elif s == best_score:
                ties += 1
        if ties <= 1:
            return best
        turn = self._start(ties)
        for d in candidates:
            if _ok(d, now, tried, strict) and self.score(d, now, streaming) == best_score:
                if not turn:
                    return d
                turn -= 1
        return best


class LeastBusy(_Scored):
    __slots__ = ()

    def score(self, d: Deployment, now: float, streaming: bool) -> float:
        return d.in_flight


class LeastLatency(_Scored):
    __slots__ = ()

    def score(self, d: Deployment, now: float, streaming: bool) -> float:
        if streaming:
            ewma, at = d.ttft_ewma_s, d.ttft_at
        else:
            ewma, at = d.latency_ewma_s, d.latency_at
        if now - at > EWMA_STALE_S:
            return 0.0  # unmeasured or stale: probe it
        return ewma * (d.in_flight + 1)


class LowestCost(_Scored):
    __slots__ = ()

    def score(self, d: Deployment, now: float, streaming: bool) -> float:
        return d.cost_per_mtok


class UsageAware(_Scored):
    __slots__ = ("shared",)

    def __init__(self, shared: bool = False) -> None:
        super().__init__()
        self.shared = shared  # read usage shared through Redis rather than this process's own

    def score(self, d: Deployment, now: float, streaming: bool) -> float:
        return -headroom(d, now, self.shared)


def headroom(d: Deployment, now: float, shared: bool = False) -> float:
    """The smallest share of the deployment's rpm and tpm still unused this minute (1.0 = no limits)."""
    rpm, tpm = d.entry.rpm, d.entry.tpm
    if not rpm and not tpm:
        return 1.0
    requests, tokens = d.usage_now(now, shared)
    room = 1.0
    if rpm:
        room = min(room, 1.0 - requests / rpm)
    if tpm:
        room = min(room, 1.0 - tokens / tpm)
    return room


class Weighted:
    """Smooth weighted round-robin over whichever candidates qualify for this pick."""

    __slots__ = ("_current",)

    def __init__(self, size: int) -> None:
        self._current = [0.0] * size  # by Deployment.index

    def pick(
        self,
        candidates: Sequence[Deployment],
        now: float,
        tried: Collection[Deployment] | None,
        strict: bool,
        streaming: bool,
    ) -> Deployment | None:
        current = self._current
        best: Deployment | None = None
        total = 0.0
        for d in candidates:
            if not _ok(d, now, tried, strict):
                continue
            weight = d.entry.weight
            current[d.index] += weight
            total += weight
            if best is None or current[d.index] > current[best.index]:
                best = d
        if best is not None:
            current[best.index] -= total
        return best


def make_strategy(name: str, size: int, shared: bool = False) -> Strategy:
    if name == "weighted":
        return Weighted(size)
    if name == "least-busy":
        return LeastBusy()
    if name == "least-latency":
        return LeastLatency()
    if name == "lowest-cost":
        return LowestCost()
    if name == "usage-aware":
        return UsageAware(shared)
    return RoundRobin()
