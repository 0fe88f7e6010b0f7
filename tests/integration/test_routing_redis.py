"""Routing state shared through a real Redis: two routers stand for two gateway instances."""

from __future__ import annotations

import secrets
from time import monotonic

from sluicegate.routing.router import Router
from sluicegate.routing.strategies import headroom
from tests.unit.routing_support import router


def pair(redis_url: str, strategy: str = "round-robin") -> tuple[Router, Router, str]:
    """Two routers on the same Redis, with a model name unique to the test (keys never collide)."""
    name = f"m{secrets.token_hex(4)}"
    text = f"""
redis_url: {redis_url}
router: {{strategy: {strategy}}}
models:
  - {{name: {name}, provider: mock, rpm: 100}}
  - {{name: {name}, provider: mock, rpm: 100}}
"""
    return router(text), router(text), name


async def test_ejection_reaches_the_other_instance_with_the_shared_count(redis_url: str) -> None:
    """An ejection made by one instance is applied by the other at its next sync, and the ejection
    count is shared, so a second ejection lasts 60 s on both."""
    first, second, name = pair(redis_url)
    try:
        a1 = first.groups[name].deployments[0]
        a2 = second.groups[name].deployments[0]
        for _ in range(5):
            first.groups[name].failed(a1, monotonic())
        assert first.share is not None and second.share is not None
        for task in list(first.share._pending):
            await task
        await second.share.sync()
        assert not a2.available(monotonic())
        assert 25 < a2.health.ejected_until - monotonic() <= 30
        # The other instance ejects it again later: the shared count makes it the second ejection.
        a2.health.ejected_until = 0.0
        await second.share._redis.delete(f"sluicegate:route:eject:{name}:{a2.label}")
        for _ in range(5):
            second.groups[name].failed(a2, monotonic())
        for task in list(second.share._pending):
            await task
        assert a2.health.times_ejected == 2
        assert 55 < a2.health.ejected_until - monotonic() <= 60
    finally:
        await first.aclose()
        await second.aclose()


async def test_usage_aware_counts_every_instance(redis_url: str) -> None:
    """Requests counted by one instance lower the deployment's headroom on the other after a sync."""
    first, second, name = pair(redis_url, "usage-aware")
    try:
        assert first.share is not None and second.share is not None
        busy = first.groups[name].deployments[0]
        for _ in range(40):
            first.groups[name].count_request(busy, monotonic())
        await first.share.sync()
        await second.share.sync()
        other_view = second.groups[name].deployments[0]
        assert headroom(other_view, monotonic(), shared=True) < 0.65
        assert second.groups[name].choose().label == second.groups[name].deployments[1].label
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_keeps_local_routing(unused_tcp_port: int) -> None:
    """With Redis unreachable, syncing logs and carries on; local ejection still works."""
    r = router(
        f"""
redis_url: redis://127.0.0.1:{unused_tcp_port}/0
models:
  - {{name: m, provider: mock}}
  - {{name: m, provider: mock}}
"""
    )
    try:
        assert r.share is not None
        await r.share.sync()  # must not raise
        d = r.groups["m"].deployments[0]
        for _ in range(5):
            r.groups["m"].failed(d, monotonic())
        for task in list(r.share._pending):
            await task
        assert not d.available(monotonic())
    finally:
        await r.aclose()
