"""A second OS process for tests/integration/test_limits.py: hammer one rpm limit through Redis.

Usage: python -m tests.integration._limits_worker REDIS_URL PREFIX RPM PROCESSES
Connects, prints `ready` and waits for a line on stdin, so sibling processes start together.
Then admits one call and waits until every sibling has admitted one too (a barrier kept in the
limiter's own counter), so the processes are certainly hammering at the same time; then 8
concurrent loops each admit calls until the limit refuses one. Prints how many it admitted.
"""

from __future__ import annotations

import asyncio
import sys
import time

from sluicegate.errors import RateLimitError
from sluicegate.limits.base import Scope
from sluicegate.limits.redis import RedisLimiter


async def main(url: str, prefix: str, rpm: int, processes: int) -> int:
    limiter = RedisLimiter(url, prefix=prefix)
    scope = Scope("key", "shared", rpm=rpm)

    async def until_refused() -> int:
        admitted = 0
        while True:
            try:
                await limiter.admit("w", [scope], 10, 0.0)
            except RateLimitError:
                return admitted
            admitted += 1

    await limiter.usage(scope)  # connect before the start line
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await limiter.admit("first", [scope], 10, 0.0)
    deadline = time.monotonic() + 10
    # Polling, not an Event: the siblings are other OS processes, seen only through Redis.
    while (await limiter.usage(scope)).requests < processes and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    admitted = 1 + sum(await asyncio.gather(*(until_refused() for _ in range(8))))
    await limiter.close()
    return admitted


if __name__ == "__main__":
    url, prefix, rpm, processes = sys.argv[1:5]
    print(asyncio.run(main(url, prefix, int(rpm), int(processes))), flush=True)
