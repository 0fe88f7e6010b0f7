"""Deployment health: outlier ejection arithmetic (SPEC §8) — thresholds, growing and capped ejection
times, never the whole group, the rolling window behind the failure rate — and active health checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic

import pytest

from sluicegate.config.schema import EjectionConfig, HealthCheck
from sluicegate.routing.health import Ejector, Health, run_checks
from sluicegate.routing.window import RollingPair
from tests.unit.routing_support import deployment, group


def test_five_consecutive_failures_eject_for_30_s() -> None:
    """Four failures in a row keep the deployment in; the fifth ejects it for 30 s."""
    a, b = deployment("a"), deployment("b")
    g = group("round-robin", a, b)
    now = 1000.0
    for _ in range(4):
        g.failed(a, now)
    assert a.available(now)
    g.failed(a, now)
    assert not a.available(now)
    assert a.health.ejected_until == pytest.approx(now + 30)
    assert a.available(now + 30)


def test_success_resets_the_consecutive_count() -> None:
    """Failures separated by a success do not add up to five in a row."""
    a, b = deployment("a"), deployment("b")
    g = group("round-robin", a, b)
    now = 1000.0
    for _ in range(4):
        g.failed(a, now)
    g.succeeded(a, now, 0.1, streaming=False)
    for _ in range(4):
        g.failed(a, now)
    assert a.available(now)


def test_failure_rate_over_half_of_ten_calls_ejects() -> None:
    """Six failures out of ten calls in a minute (never five in a row) eject; five out of ten do not."""
    a, b = deployment("a"), deployment("b")
    g = group("round-robin", a, b)
    now = 1000.0
    for _ in range(5):  # F S F S ... : 5 failures, 5 successes
        g.failed(a, now)
        g.succeeded(a, now, 0.1, streaming=False)
    assert a.available(now)
    g.failed(a, now)  # 6 of 11 failed
    assert not a.available(now)


def test_ejection_time_grows_with_each_ejection_and_caps_at_300_s() -> None:
    """The n-th ejection lasts 30 s x n, never more than 300 s."""
    ejector = Ejector(EjectionConfig())
    health = Health()
    now = 1000.0
    durations = []
    for _ in range(12):
        durations.append(ejector.eject(health, now))
        now += durations[-1] + 1  # back in service, failing again soon after
    assert durations[:4] == [30, 60, 90, 120]
    assert durations[9:] == [300, 300, 300]


def test_ejection_count_starts_over_after_a_quiet_spell() -> None:
    """A deployment that stayed in service well beyond the cap is ejected for the base time again."""
    ejector = Ejector(EjectionConfig())
    health = Health()
    ejector.eject(health, 1000.0)
    ejector.eject(health, 1100.0)
    assert ejector.eject(health, 1100.0 + 601 + 60) == 30


def test_never_ejects_the_last_available_deployment() -> None:
    """With its partner already ejected, a failing deployment stays in: a group is never emptied."""
    a, b = deployment("a"), deployment("b")
    g = group("round-robin", a, b)
    now = 1000.0
    for _ in range(5):
        g.failed(a, now)
    assert not a.available(now)
    for _ in range(20):
        g.failed(b, now)
    assert b.available(now)


def test_a_group_of_one_is_never_ejected() -> None:
    """A single deployment keeps serving whatever it returns."""
    only = deployment("only")
    g = group("round-robin", only)
    for _ in range(50):
        g.failed(only, 1000.0)
    assert only.available(1000.0)


def test_ejection_clears_the_slate() -> None:
    """After an ejection ends, one more failure does not eject again at once (old failures are gone)."""
    a, b = deployment("a"), deployment("b")
    g = group("round-robin", a, b)
    for _ in range(5):
        g.failed(a, 1000.0)
    back = a.health.ejected_until
    g.failed(a, back)
    assert a.available(back)


def test_custom_thresholds_apply() -> None:
    """`router.ejection` changes the thresholds: two failures in a row and 10 s base here."""
    ejector = Ejector(EjectionConfig(consecutive_failures=2, base_s=10, max_s=15))
    health = Health()
    assert not ejector.failure(health, 0.0)
    assert ejector.failure(health, 0.0)
    assert [ejector.eject(health, 0.0), ejector.eject(health, 20.0)] == [10, 15]


def test_rolling_window_forgets_old_buckets() -> None:
    """Counts leave the window once their bucket is more than a window old."""
    window = RollingPair(60.0, 6)
    window.add(0.0, 3, 1)
    window.add(30.0, 2, 2)
    assert window.totals(59.0) == (5, 3)
    assert window.totals(65.0) == (2, 2)
    assert window.totals(95.0) == (0, 0)
    window.add(125.0, 1, 0)  # reuses bucket 0's slot: the old count is reset
    assert window.totals(125.0) == (1, 0)


class _Transport:
    """A transport whose answers a test flips between healthy (200) and failing (503)."""

    def __init__(self) -> None:
        self.status = 503
        self.calls = 0

    async def open(
        self, request: object, *, timeout_s: float, connect_timeout_s: float, stream: bool
    ) -> object:
        self.calls += 1
        status = self.status

        class _Reply:
            headers: dict[str, str] = {}

            def __init__(self) -> None:
                self.status = status

            async def read(self) -> bytes:
                return b"{}"

            def close(self) -> None:
                return None

        return _Reply()


async def _until(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` for up to 2 s: the checker runs in the background on its own interval."""
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached within 2 s")


async def test_active_checks_take_a_failing_deployment_out_and_bring_it_back() -> None:
    """Two failed checks in a row take a deployment out; one passing check brings it back and ends
    a passive ejection too."""
    check = HealthCheck(interval_s=0.01, timeout_s=1.0, unhealthy_threshold=2)
    a = deployment("a", health_check=check)
    b = deployment("b")
    transport = _Transport()
    a.transport = transport
    g = group("round-robin", a, b)
    task = asyncio.create_task(run_checks(g, a))
    try:
        await _until(lambda: a.health.unhealthy)
        assert transport.calls >= 2 and not a.available(monotonic())
        assert a.state()["status"] == "unhealthy"
        a.health.ejected_until = monotonic() + 300  # also passively ejected meanwhile
        transport.status = 200
        await _until(lambda: a.available(monotonic()))
        assert a.state()["status"] == "healthy" and a.state()["active_check"]["last_ok"] is True
    finally:
        task.cancel()


async def test_active_checks_never_take_out_the_last_deployment() -> None:
    """A failing check does not take out a deployment whose partners are all unavailable."""
    check = HealthCheck(interval_s=0.01, timeout_s=1.0, unhealthy_threshold=1)
    a, b = deployment("a", health_check=check), deployment("b")
    a.transport = _Transport()
    b.disabled = True
    task = asyncio.create_task(run_checks(group("round-robin", a, b), a))
    try:
        await _until(lambda: a.health.check_failures >= 3)
        assert not a.health.unhealthy
    finally:
        task.cancel()
