"""Priority admission to a model group at its concurrency limit (issue #5, item 6).

A group whose deployments all set `max_parallel` takes at most their sum of calls at once (per
gateway process). Beyond that a call waits in a bounded queue that serves `high` before `normal`
before `low` (first come, first served within a level); a full queue, or a wait that outlasts the
request's total timeout, is a 429 with `retry-after`. A slot is handed straight from the call that
leaves to the waiter that is next, so a newcomer can never overtake the queue.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..errors import RateLimitError

HIGH, NORMAL, LOW = 0, 1, 2
PRIORITIES = {"high": HIGH, "normal": NORMAL, "low": LOW}
NAMES = ("high", "normal", "low")
QUEUE_RETRY_AFTER_S = "1"


class PriorityGate:
    __slots__ = ("_queues", "active", "limit", "name", "queue_size", "waiting")

    def __init__(self, name: str, limit: int, queue_size: int) -> None:
        self.name = name
        self.limit = limit
        self.queue_size = queue_size
        self.active = 0
        self.waiting = 0
        self._queues: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque(), deque())

    def try_enter(self) -> bool:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return True
        return False

    async def enter(self, priority: int, timeout_s: float) -> None:
        """Take a slot, waiting in the queue if needed; raises RateLimitError (429) when it cannot."""
        if self.try_enter():
            return
        if self.waiting >= self.queue_size:
            raise self._refusal(f"its queue of {self.queue_size} waiting calls is full")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues[priority]
        queue.append(future)
        self.waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(future), max(0.0, timeout_s))
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self.leave()  # the slot arrived as we gave up: pass it on
            else:
                future.cancel()
                queue.remove(future)
                self.waiting -= 1
            if isinstance(exc, TimeoutError):
                raise self._refusal(f"no slot freed within {timeout_s:.3g} s") from None
            raise

    def leave(self) -> None:
        for queue in self._queues:
            while queue:
                future = queue.popleft()
                self.waiting -= 1
                if not future.done():
                    future.set_result(None)  # the slot moves to the waiter: `active` is unchanged
                    return
        self.active -= 1

    def _refusal(self, why: str) -> RateLimitError:
        return RateLimitError(
            f"model '{self.name}' is at its concurrency limit ({self.limit} calls) and {why}; retry later",
            headers={"retry-after": QUEUE_RETRY_AFTER_S},
        )
