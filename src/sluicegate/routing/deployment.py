"""A live deployment: one `models[]` entry with its adapter, transport and routing state.

Built once per config. Besides what a call needs (adapter, transport, deadlines) a deployment
carries the state the router reads to choose it: calls in flight, EWMAs of latency and time to
first token, its health (outlier ejection, active checks), its rolling request/token usage and
its price. `state()` is the read-only view for `sluicegate models` and `GET /admin/models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from ..config.schema import ModelEntry
from ..providers.base import Adapter
from .health import Health
from .window import RollingPair

EWMA_ALPHA = 0.3
# A latency sample older than this no longer describes the deployment: the next one replaces it,
# so a deployment that was slow once is probed again rather than avoided forever.
EWMA_STALE_S = 30.0


@dataclass(slots=True, eq=False)
class Deployment:
    label: str  # shown in `x-sluicegate-deployment`, e.g. "openai/gpt-4o-mini"
    entry: ModelEntry
    adapter: Adapter
    transport: Any  # upstream.client.Transport
    timeout_s: float
    connect_timeout_s: float
    in_flight: int = 0
    # Set by the ModelGroup that owns the deployment.
    index: int = 0
    stream_idle_s: float = 0.0
    cost_per_mtok: float = float("inf")  # input + output price; unknown prices sort last
    # What a call costs here (spend/prices.py `price_for`), resolved once when the Runtime is built;
    # None = unknown model, billed at 0 and marked `unpriced` (pipeline/accounting.py).
    price: Any = None
    disabled: bool = False  # switched off at run time by an admin
    health: Health = field(default_factory=Health)
    usage: RollingPair = field(default_factory=RollingPair)  # (requests, tokens) over the last minute
    # Usage of every gateway instance as of the last Redis sync, plus ours since then (usage-aware).
    shared_requests: float = 0.0
    shared_tokens: float = 0.0
    unsynced_requests: int = 0
    unsynced_tokens: int = 0
    latency_ewma_s: float = 0.0  # complete calls: request to full reply
    latency_at: float = -1e18
    ttft_ewma_s: float = 0.0  # streams: request to first token
    ttft_at: float = -1e18

    def __post_init__(self) -> None:
        if not self.stream_idle_s:
            self.stream_idle_s = self.timeout_s

    def available(self, now: float) -> bool:
        """Neither ejected, nor failing its active checks, nor disabled."""
        health = self.health
        return not self.disabled and not health.unhealthy and now >= health.ejected_until

    def record_latency(self, now: float, seconds: float, streaming: bool) -> None:
        if streaming:
            if now - self.ttft_at > EWMA_STALE_S:
                self.ttft_ewma_s = seconds
            else:
                self.ttft_ewma_s += EWMA_ALPHA * (seconds - self.ttft_ewma_s)
            self.ttft_at = now
        else:
            if now - self.latency_at > EWMA_STALE_S:
                self.latency_ewma_s = seconds
            else:
                self.latency_ewma_s += EWMA_ALPHA * (seconds - self.latency_ewma_s)
            self.latency_at = now

    def usage_now(self, now: float, shared: bool) -> tuple[float, float]:
        """(requests, tokens) in the last minute: every instance's when shared through Redis."""
        if shared:
            return self.shared_requests + self.unsynced_requests, self.shared_tokens + self.unsynced_tokens
        requests, tokens = self.usage.totals(now)
        return float(requests), float(tokens)

    def state(self, now: float | None = None) -> dict[str, Any]:
        """A JSON-ready snapshot of this deployment's routing state (read-only)."""
        now = monotonic() if now is None else now
        health = self.health
        calls, failures = health.window.totals(now)
        requests, tokens = self.usage.totals(now)
        ejected_for = max(0.0, health.ejected_until - now)
        if self.disabled:
            status = "disabled"
        elif ejected_for > 0:
            status = "ejected"
        elif health.unhealthy:
            status = "unhealthy"
        else:
            status = "healthy"
        return {
            "deployment": self.label,
            "provider": self.entry.provider,
            "model": self.entry.upstream_model,
            "status": status,
            "healthy": status == "healthy",
            "disabled": self.disabled,
            "ejected": ejected_for > 0,
            "ejected_for_s": round(ejected_for, 3),
            "times_ejected": health.times_ejected,
            "consecutive_failures": health.consecutive,
            "recent_calls": calls,
            "recent_failures": failures,
            "active_check": None
            if self.entry.health_check is None
            else {"failures": health.check_failures, "last_ok": health.check_ok},
            "in_flight": self.in_flight,
            "max_parallel": self.entry.max_parallel,
            "latency_ewma_ms": round(self.latency_ewma_s * 1000, 3) if self.latency_at > 0 else None,
            "ttft_ewma_ms": round(self.ttft_ewma_s * 1000, 3) if self.ttft_at > 0 else None,
            "requests_last_minute": requests,
            "tokens_last_minute": tokens,
            "rpm": self.entry.rpm,
            "tpm": self.entry.tpm,
        }
