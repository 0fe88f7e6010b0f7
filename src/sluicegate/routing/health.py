"""Deployment health: passive outlier ejection (SPEC §8) and optional active health checks.

Passive: every attempt's outcome is recorded. A deployment is ejected after `consecutive_failures`
failures in a row, or when more than `failure_rate` of at least `min_calls` calls in the last
`window_s` failed. It stays out for `base_s` x times ejected, capped at `max_s`; the multiplier
starts over once the deployment has stayed in for `max_s`. A group never ejects its last available
deployment (the router also ignores ejections when every deployment is out: "panic" routing).
What counts as a failure is decided by the dispatch loop: connect errors, timeouts, 429 and 5xx,
and streams that break after their first byte; a provider's 400 is the caller's fault.

Active (per model entry `health_check: {interval_s, timeout_s, unhealthy_threshold, probe}`): a
tiny call every `interval_s` through the deployment's own adapter and transport; after
`unhealthy_threshold` failed checks in a row the deployment is taken out until a check passes,
and a passing check also ends a passive ejection (as Envoy does by default).
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import TYPE_CHECKING

from ..config.schema import EjectionConfig
from .window import RollingPair

if TYPE_CHECKING:
    from .deployment import Deployment
    from .router import ModelGroup
    from .shared import RedisShare

log = logging.getLogger("sluicegate")


class Health:
    """One deployment's health counters; all times are `time.monotonic()` seconds."""

    __slots__ = (
        "check_failures",
        "check_ok",
        "consecutive",
        "ejected_until",
        "last_ejected_at",
        "times_ejected",
        "unhealthy",
        "window",
    )

    def __init__(self, window_s: float = 60.0) -> None:
        self.consecutive = 0
        self.window = RollingPair(window_s)  # (calls, failures)
        self.ejected_until = 0.0
        self.times_ejected = 0
        self.last_ejected_at = -1e18
        self.unhealthy = False  # failing its active health checks
        self.check_failures = 0
        self.check_ok: bool | None = None


class Ejector:
    """The ejection arithmetic of one router config, shared by every group."""

    __slots__ = ("base_s", "consecutive", "max_s", "min_calls", "rate")

    def __init__(self, config: EjectionConfig) -> None:
        self.consecutive = config.consecutive_failures
        self.rate = config.failure_rate
        self.min_calls = config.min_calls
        self.base_s = config.base_s
        self.max_s = config.max_s

    @staticmethod
    def success(health: Health, now: float) -> None:
        health.consecutive = 0
        health.window.add(now, 1, 0)

    def failure(self, health: Health, now: float) -> bool:
        """Record a failed call; True when the deployment has now earned an ejection."""
        health.consecutive += 1
        health.window.add(now, 1, 1)
        if health.consecutive >= self.consecutive:
            return True
        calls, failures = health.window.totals(now)
        return calls >= self.min_calls and failures > self.rate * calls

    def duration(self, times_ejected: int) -> float:
        return min(self.base_s * times_ejected, self.max_s)

    def eject(self, health: Health, now: float) -> float:
        """Take the deployment out; returns for how many seconds."""
        if now - health.last_ejected_at > 2 * self.max_s:
            # In service for a while since its last ejection: the next one starts from the base time.
            health.times_ejected = 0
        health.times_ejected += 1
        seconds = self.duration(health.times_ejected)
        self.apply(health, now, seconds)
        return seconds

    @staticmethod
    def apply(health: Health, now: float, seconds: float) -> None:
        """Out for `seconds` from `now` (also used for ejections learnt from other instances)."""
        health.ejected_until = now + seconds
        health.last_ejected_at = now
        # Back in service with a clean slate: old failures must not eject it again at once.
        health.consecutive = 0
        health.window.clear()


# --------------------------------------------------------------------------- active checks


async def probe(deployment: Deployment, timeout_s: float, kind: str) -> bool:
    """One health-check call through the deployment's adapter: True when it answers 2xx."""
    from ..pipeline.dispatch import prepare
    from ..types import ChatRequest, EmbeddingsRequest

    adapter = deployment.adapter
    model = deployment.entry.name
    if kind == "embeddings":
        request = adapter.build_embeddings_request(
            EmbeddingsRequest(body={"model": model, "input": ["ping"]}, model=model, inputs=["ping"])
        )
    else:
        body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        request = adapter.build_request(ChatRequest(body=body, model=model))
    stream = None
    try:
        request = await prepare(deployment, request)
        stream = await deployment.transport.open(
            request,
            timeout_s=timeout_s,
            connect_timeout_s=min(timeout_s, deployment.connect_timeout_s),
            stream=False,
        )
        await stream.read()
        return stream.status < 400
    except Exception:  # any failure of the probe is a failed check, whatever raised it
        return False
    finally:
        if stream is not None:
            stream.close()


async def run_checks(group: ModelGroup, deployment: Deployment, share: RedisShare | None = None) -> None:
    """Check one deployment forever (a background task of the router)."""
    check = deployment.entry.health_check
    assert check is not None
    health = deployment.health
    while True:
        await asyncio.sleep(check.interval_s)
        ok = await probe(deployment, check.timeout_s, check.probe)
        health.check_ok = ok
        if ok:
            health.check_failures = 0
            was_ejected = health.ejected_until > monotonic()
            if health.unhealthy or was_ejected:
                log.info(
                    "deployment back in service after a passing health check",
                    extra={"deployment": deployment.label},
                )
            health.unhealthy = False
            health.ejected_until = 0.0
            if was_ejected and share is not None:
                await share.clear_ejection(group, deployment)
            continue
        health.check_failures += 1
        if (
            not health.unhealthy
            and health.check_failures >= check.unhealthy_threshold
            and group.others_available(deployment, monotonic())
        ):
            health.unhealthy = True
            log.warning(
                "deployment failing its health checks: taken out", extra={"deployment": deployment.label}
            )
