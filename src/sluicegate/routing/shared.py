"""Routing state shared by every gateway instance through Redis (when `redis_url` is set).

Nothing here runs per request. An ejection is decided locally, applied at once, and published
in the background with one Lua call that also counts the times ejected across instances (so the
ejection time grows the same everywhere). A background task exchanges the rest every
`router.sync_interval_s` in one pipelined round trip: it reads which deployments another instance
has ejected (key TTLs), and for usage-aware groups adds this instance's requests and tokens since
the last exchange to per-minute counters and reads everyone's totals back. Redis trouble is
logged and routing carries on with local state.

Keys (prefix `sluicegate:route:`): `eject:{model}:{label}` (value = times ejected, TTL = the
ejection), `ejections:{model}:{label}` (times ejected, expires after a quiet spell),
`use:{model}:{label}:{minute}` (hash `r` requests, `t` tokens; expires after 3 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import math
from time import monotonic, time
from typing import TYPE_CHECKING, Any

from .health import Ejector

if TYPE_CHECKING:
    from .deployment import Deployment
    from .router import ModelGroup

log = logging.getLogger("sluicegate")

PREFIX = "sluicegate:route:"
# Eject unless another instance already did; count the ejection; returns {ms left, times ejected}.
_EJECT_LUA = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  return {left, tonumber(redis.call('GET', KEYS[1]) or '1')}
end
local times = redis.call('INCR', KEYS[2])
local ms = math.min(tonumber(ARGV[1]) * times, tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], ms + 2 * tonumber(ARGV[2]))
redis.call('SET', KEYS[1], times, 'PX', ms)
return {ms, times}
"""


def eject_key(group: str, label: str) -> str:
    return f"{PREFIX}eject:{group}:{label}"


def _times_key(group: str, label: str) -> str:
    return f"{PREFIX}ejections:{group}:{label}"


def _use_key(group: str, label: str, minute: int) -> str:
    return f"{PREFIX}use:{group}:{label}:{minute}"


class RedisShare:
    def __init__(self, url: str, groups: dict[str, ModelGroup], ejector: Ejector, interval_s: float) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._groups = groups
        self._ejector = ejector
        self.interval_s = interval_s
        self._eject_script: Any = self._redis.register_script(_EJECT_LUA)
        self._pending: set[asyncio.Task[None]] = set()
        self._failing = False

    # ------------------------------------------------------------------------- ejections

    def publish_ejection(self, group: ModelGroup, deployment: Deployment) -> None:
        """Tell the other instances (in the background; the local ejection is already applied)."""
        task = asyncio.ensure_future(self._publish(group, deployment))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, group: ModelGroup, deployment: Deployment) -> None:
        label = deployment.label
        try:
            ms, times = await self._eject_script(
                keys=[eject_key(group.name, label), _times_key(group.name, label)],
                args=[int(self._ejector.base_s * 1000), int(self._ejector.max_s * 1000)],
            )
        except Exception as exc:
            self._trouble(exc)
            return
        # The shared count is authoritative: every instance ejects for the same time.
        health = deployment.health
        health.times_ejected = int(times)
        health.ejected_until = max(health.ejected_until, monotonic() + int(ms) / 1000.0)

    async def clear_ejection(self, group: ModelGroup, deployment: Deployment) -> None:
        try:
            await self._redis.delete(eject_key(group.name, deployment.label))
        except Exception as exc:
            self._trouble(exc)

    # ---------------------------------------------------------------------------- sync

    async def run(self) -> None:
        while True:
            await self.sync()  # at once on start: a new instance learns current ejections first
            await asyncio.sleep(self.interval_s)

    async def sync(self) -> None:
        """One exchange with Redis: ejections in, usage out and in."""
        clock = time() / 60
        minute = math.floor(clock)
        fraction = clock - minute
        ejections: list[tuple[ModelGroup, Deployment]] = []
        usage: list[tuple[Deployment, int, int]] = []
        pipe = self._redis.pipeline(transaction=False)
        # Ejection reads first, usage commands after: results come back in this order.
        for group in self._groups.values():
            for d in group.deployments:
                ejections.append((group, d))
                pipe.pttl(eject_key(group.name, d.label))
        for group in self._groups.values():
            if not group.shares_usage:
                continue
            for d in group.deployments:
                requests, tokens = d.unsynced_requests, d.unsynced_tokens
                current = _use_key(group.name, d.label, minute)
                if requests or tokens:
                    pipe.hincrby(current, "r", requests)
                    pipe.hincrby(current, "t", tokens)
                    pipe.expire(current, 180)
                pipe.hmget(current, "r", "t")
                pipe.hmget(_use_key(group.name, d.label, minute - 1), "r", "t")
                usage.append((d, requests, tokens))
        if not ejections:
            return
        try:
            results = await pipe.execute()
        except Exception as exc:
            self._trouble(exc)
            return
        if self._failing:
            self._failing = False
            log.info("routing state shared through Redis again")
        now = monotonic()
        at = 0
        for group, d in ejections:
            left_ms = results[at]
            at += 1
            if isinstance(left_ms, int) and left_ms > 0:
                until = now + left_ms / 1000.0
                # Never the whole group, even when instances disagree about who should go.
                if until > d.health.ejected_until + 0.5 and group.others_available(d, now):
                    Ejector.apply(d.health, now, left_ms / 1000.0)
        for d, sent_requests, sent_tokens in usage:
            if sent_requests or sent_tokens:
                at += 3
                d.unsynced_requests -= sent_requests
                d.unsynced_tokens -= sent_tokens
            current, previous = results[at], results[at + 1]
            at += 2
            # A sliding minute: this minute's count plus the part of the last one still inside it.
            d.shared_requests = _count(current[0]) + _count(previous[0]) * (1.0 - fraction)
            d.shared_tokens = _count(current[1]) + _count(previous[1]) * (1.0 - fraction)

    def _trouble(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("cannot share routing state through Redis (%s); using local state", exc)

    async def aclose(self) -> None:
        for task in list(self._pending):
            task.cancel()
        try:
            await self._redis.aclose()
        except Exception as exc:  # closing a broken connection must not fail a shutdown
            log.debug("closing the routing Redis client: %s", exc)


def _count(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
