"""The in-repo load generator, used when wrk is not installed; run as its own process.

`python -m sluicegate.bench.loadgen URL --concurrency C --duration S [--stream]` keeps C
requests in flight for S seconds over keep-alive connections and prints one JSON line:
requests/s, latency percentiles (ms) and errors. With --stream it measures time to the first
SSE data event instead of the full response.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import orjson

BODY = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "hello from the benchmark"}]})


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _run(
    url: str, concurrency: int, duration: float, key: str, stream: bool, warmup: float
) -> dict[str, float]:
    body = BODY if not stream else orjson.dumps({**orjson.loads(BODY), "stream": True})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        measure_from = time.perf_counter() + warmup
        stop_at = measure_from + duration

        async def worker() -> None:
            nonlocal errors
            while True:
                began = time.perf_counter()
                if began >= stop_at:
                    return
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        if stream:
                            async for line in resp.content:
                                if line.startswith(b"data:"):
                                    break
                            first = time.perf_counter()
                            await resp.read()
                        else:
                            await resp.read()
                            first = time.perf_counter()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                    first = time.perf_counter()
                if began >= measure_from:
                    if ok:
                        latencies.append((first - began) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--key", default="sk-bench")
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the loadgen works without it
        pass
    result = asyncio.run(_run(args.url, args.concurrency, args.duration, args.key, args.stream, args.warmup))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
