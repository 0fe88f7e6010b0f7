"""Deployment groups (entries sharing a `name`) and the router that owns them.

A `ModelGroup` chooses the deployment for each attempt with its strategy (strategies.py),
preferring, in order: available deployments this request has not tried; available ones it has
(a retry); and, only when every deployment is ejected or failing checks, any of them ("panic"
routing — a gateway that refuses to call anything is worse than one that calls a doubtful
deployment). It records each attempt's outcome (health.py), and gates concurrency when every
deployment sets `max_parallel` (priority.py).

The `Router` is built once per config with the groups: it holds the retry budget, the ejection
policy, the Redis link (shared.py) and the background tasks (Redis sync, active health checks),
which start with the first request and stop with `aclose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from time import monotonic
from typing import Any

from ..config.schema import Config, RouterConfig
from .deployment import Deployment
from .health import Ejector, Health, run_checks
from .priority import PriorityGate
from .retry import RetryBudget
from .shared import RedisShare
from .strategies import make_strategy

log = logging.getLogger("sluicegate")

LEGACY_PREFIX = "legacy:"  # capability of the legacy /v1/completions endpoint itself: "legacy:chat"


def supports(d: Deployment, capability: str) -> bool:
    if capability.startswith(LEGACY_PREFIX):
        base = capability[len(LEGACY_PREFIX) :]
        return bool(getattr(d.adapter, "legacy_completions", False)) and base in d.adapter.capabilities
    return capability in d.adapter.capabilities


def _price(d: Deployment) -> float:
    """Input + output USD per million tokens (spend/prices.py: the entry's `price`, else the table)."""
    from ..spend.prices import price_for

    try:
        found = price_for(d.entry)
    except Exception:  # a price lookup must never stop the gateway from starting
        return float("inf")
    return float("inf") if found is None else found.input + found.output


class ModelGroup:
    __slots__ = (
        "_capable",
        "context_window",
        "deployments",
        "ejector",
        "gate",
        "name",
        "on_eject",
        "owned_by",
        "shares_usage",
        "strategy",
        "strategy_name",
        "tracks_usage",
    )

    def __init__(
        self,
        name: str,
        deployments: list[Deployment],
        strategy: str = "round-robin",
        config: RouterConfig | None = None,
        *,
        shared: bool = False,
    ) -> None:
        config = config or RouterConfig(strategy=strategy)  # type: ignore[arg-type]
        self.name = name
        self.deployments = deployments
        self.owned_by = deployments[0].entry.provider
        self.strategy_name = strategy
        self.strategy = make_strategy(strategy, len(deployments), shared)
        self.ejector = Ejector(config.ejection)
        self.on_eject: Any = None  # RedisShare.publish_ejection when Redis is configured
        self.tracks_usage = strategy == "usage-aware"
        self.shares_usage = self.tracks_usage and shared
        self._capable: dict[str, tuple[Deployment, ...]] = {}
        idle = config.stream_idle_timeout_s
        for index, d in enumerate(deployments):
            d.index = index
            d.stream_idle_s = min(idle, d.timeout_s)
            if config.ejection.window_s != 60.0:
                d.health = Health(config.ejection.window_s)
            if strategy == "lowest-cost":
                d.cost_per_mtok = _price(d)
        limits = [d.entry.max_parallel for d in deployments]
        self.gate = (
            PriorityGate(name, sum(limits), config.queue_size)  # type: ignore[arg-type]
            if all(limit is not None for limit in limits)
            else None
        )
        windows = [d.entry.context_window for d in deployments]
        # The group fits a prompt if its largest deployment does (None: some deployment has no known window).
        self.context_window = max(windows) if all(w is not None for w in windows) else None  # type: ignore[type-var]

    def capable(self, capability: str) -> tuple[Deployment, ...]:
        found = self._capable.get(capability)
        if found is None:
            found = tuple(d for d in self.deployments if supports(d, capability))
            self._capable[capability] = found
        return found

    def choose(
        self,
        capability: str = "chat",
        tried: Collection[Deployment] | None = None,
        streaming: bool = False,
        now: float | None = None,
    ) -> Deployment | None:
        """The deployment for the next attempt, or None when the group has none for `capability`."""
        candidates = self.capable(capability)
        if len(candidates) == 1:
            only = candidates[0]
            return None if only.disabled else only
        if not candidates:
            return None
        if now is None:
            now = monotonic()
        pick = self.strategy.pick
        chosen = pick(candidates, now, tried, True, streaming)
        if chosen is None and tried:
            chosen = pick(candidates, now, None, True, streaming)
        if chosen is None:
            chosen = pick(candidates, now, tried, False, streaming) or pick(
                candidates, now, None, False, streaming
            )
        return chosen

    def others_available(self, deployment: Deployment, now: float) -> bool:
        return any(d is not deployment and d.available(now) for d in self.deployments)

    # ------------------------------------------------------------------- outcomes

    def succeeded(self, d: Deployment, now: float, seconds: float, streaming: bool) -> None:
        self.ejector.success(d.health, now)
        d.record_latency(now, seconds, streaming)

    def failed(self, d: Deployment, now: float) -> None:
        earned = self.ejector.failure(d.health, now) and d.available(now)
        if earned and self.others_available(d, now):
            seconds = self.ejector.eject(d.health, now)
            log.warning(
                "deployment ejected for %gs after failures (ejection #%d)",
                seconds,
                d.health.times_ejected,
                extra={"model": self.name, "deployment": d.label},
            )
            if self.on_eject is not None:
                self.on_eject(self, d)

    def count_request(self, d: Deployment, now: float) -> None:
        d.usage.add(now, 1, 0)
        d.unsynced_requests += 1

    def count_tokens(self, d: Deployment, now: float, tokens: int) -> None:
        d.usage.add(now, 0, tokens)
        d.unsynced_tokens += tokens

    # ----------------------------------------------------------------- admin view

    def state(self) -> list[dict[str, Any]]:
        """Each deployment's routing state (read-only), for `sluicegate models` and /admin/models."""
        now = monotonic()
        return [d.state(now) for d in self.deployments]

    def find(self, label: str) -> Deployment | None:
        for d in self.deployments:
            if d.label == label:
                return d
        return None


class Router:
    """The groups of one config plus what routing shares across them."""

    def __init__(self, config: Config, grouped: dict[str, list[Deployment]]) -> None:
        rc = config.router
        self.config = rc
        shared = config.redis_url is not None
        self.groups: dict[str, ModelGroup] = {
            name: ModelGroup(name, deps, rc.strategy, rc, shared=shared) for name, deps in grouped.items()
        }
        self.budget = RetryBudget(rc.retry_budget)
        self.share: RedisShare | None = None
        if config.redis_url is not None:
            share = RedisShare(config.redis_url, self.groups, Ejector(rc.ejection), rc.sync_interval_s)
            self.share = share
            for group in self.groups.values():
                group.on_eject = share.publish_ejection
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the background tasks (called on the first request, inside the running loop)."""
        if self.started:
            return
        self.started = True
        if self.share is not None:
            self._tasks.append(asyncio.ensure_future(self.share.run()))
        for group in self.groups.values():
            for d in group.deployments:
                if d.entry.health_check is not None:
                    self._tasks.append(asyncio.ensure_future(run_checks(group, d, self.share)))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A background task that failed must not fail the shutdown.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.share is not None:
            await self.share.aclose()

    def state(self) -> dict[str, list[dict[str, Any]]]:
        """Every group's deployments and their routing state, by model name."""
        return {name: group.state() for name, group in self.groups.items()}
