"""The priority gate of a group at its concurrency limit: order, bounds, timeouts, no leaked slots."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.errors import RateLimitError
from sluicegate.routing.priority import HIGH, LOW, NORMAL, PriorityGate


async def test_queue_serves_high_then_normal_then_low() -> None:
    """At the limit, waiters are served high before normal before low, whatever their arrival order."""
    gate = PriorityGate("m", limit=1, queue_size=10)
    assert gate.try_enter()
    served: list[str] = []

    async def wait(name: str, priority: int) -> None:
        await gate.enter(priority, 5.0)
        served.append(name)
        gate.leave()

    tasks = []
    for name, priority in [("low", LOW), ("normal-1", NORMAL), ("high", HIGH), ("normal-2", NORMAL)]:
        tasks.append(asyncio.create_task(wait(name, priority)))
        await asyncio.sleep(0)
    assert gate.waiting == 4
    gate.leave()
    await asyncio.gather(*tasks)
    assert served == ["high", "normal-1", "normal-2", "low"]
    assert gate.active == 0 and gate.waiting == 0


async def test_newcomer_cannot_overtake_the_queue() -> None:
    """While calls wait, a new call queues too even if a slot is momentarily free."""
    gate = PriorityGate("m", limit=1, queue_size=10)
    assert gate.try_enter()
    waiter = asyncio.create_task(gate.enter(LOW, 5.0))
    await asyncio.sleep(0)
    gate.leave()  # the slot goes to the waiter, not back to the pool
    assert not gate.try_enter()
    await waiter
    assert gate.active == 1


async def test_full_queue_is_a_429_with_retry_after() -> None:
    """Beyond the queue size a call is refused with a 429 and `retry-after`."""
    gate = PriorityGate("m", limit=1, queue_size=1)
    assert gate.try_enter()
    waiter = asyncio.create_task(gate.enter(NORMAL, 5.0))
    await asyncio.sleep(0)
    with pytest.raises(RateLimitError) as info:
        await gate.enter(HIGH, 5.0)
    assert info.value.http_status == 429 and info.value.headers["retry-after"]
    waiter.cancel()


async def test_wait_past_the_timeout_is_a_429_and_leaks_nothing() -> None:
    """A call whose total timeout ends in the queue gets a 429; the queue and slots stay consistent."""
    gate = PriorityGate("m", limit=1, queue_size=5)
    assert gate.try_enter()
    with pytest.raises(RateLimitError):
        await gate.enter(NORMAL, 0.05)
    assert gate.waiting == 0
    gate.leave()
    assert gate.active == 0 and gate.try_enter()


async def test_cancelled_waiter_gives_up_its_place() -> None:
    """A client that leaves while queued neither holds a slot nor blocks the next waiter."""
    gate = PriorityGate("m", limit=1, queue_size=5)
    assert gate.try_enter()
    first = asyncio.create_task(gate.enter(HIGH, 5.0))
    second = asyncio.create_task(gate.enter(LOW, 5.0))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.leave()
    await asyncio.wait_for(second, 1.0)
    assert gate.active == 1 and gate.waiting == 0
