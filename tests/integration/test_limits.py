"""The rate-limit and budget engine: one suite run against both backends (memory, real Redis).

Redis tests use the session's private redis-server and a unique key prefix per test, so tests
never see each other's counters. Time-dependent checks move the limiter's clock forward (budget
periods) or use short reservation TTLs with real sleeps (expiry), which works for both backends.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sluicegate.errors import QuotaExceededError, RateLimitError
from sluicegate.limits import make_limiter
from sluicegate.limits.base import Admission, Limiter, Scope
from sluicegate.limits.memory import MemoryLimiter
from sluicegate.limits.periods import period_end, period_start
from sluicegate.limits.redis import LimiterUnavailableError, RedisLimiter

ROOT = Path(__file__).resolve().parents[2]

Factory = Callable[..., Any]


class Clock:
    """Wall-clock time plus an adjustable offset: lets a test jump to the next budget period."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Builds limiters of the parametrized backend; Redis ones share a prefix unique to the test."""
    backend = request.param
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    prefix = f"test-{uuid.uuid4().hex[:10]}:{{limits}}:"
    created: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        limiter = RedisLimiter.from_url(url, prefix=prefix, **kwargs) if url else MemoryLimiter(**kwargs)
        created.append(limiter)
        return limiter

    yield factory
    for limiter in created:
        await limiter.close()


async def try_admit(
    limiter: Limiter, scopes: list[Scope], tokens: int = 10, cost: float = 0.0
) -> Admission | None:
    try:
        return await limiter.admit(uuid.uuid4().hex, scopes, tokens, cost)
    except RateLimitError:
        return None


# --- requests per minute ---


async def test_rpm_admits_exactly_the_limit_in_sequence(make: Factory) -> None:
    """With rpm 10, exactly 10 of 30 back-to-back calls are admitted and the rest get a 429."""
    limiter = make()
    scope = Scope("key", "k", rpm=10)
    results = [await try_admit(limiter, [scope]) for _ in range(30)]
    assert sum(r is not None for r in results) == 10
    assert all(r is not None for r in results[:10])


async def test_rpm_admits_exactly_the_limit_concurrently(make: Factory) -> None:
    """With rpm 10, exactly 10 of 30 simultaneous calls are admitted."""
    limiter = make()
    scope = Scope("key", "k", rpm=10)
    results = await asyncio.gather(*(try_admit(limiter, [scope]) for _ in range(30)))
    assert sum(r is not None for r in results) == 10
    assert (await limiter.usage(scope)).requests == 10


async def test_two_limiters_sharing_redis_admit_exactly_the_limit(redis_url: str) -> None:
    """Two limiter instances (two clients, as two processes would have) share one rpm limit exactly."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:{{limits}}:"
    first = RedisLimiter.from_url(redis_url, prefix=prefix)
    second = RedisLimiter.from_url(redis_url, prefix=prefix)
    scope = Scope("key", "k", rpm=10)
    try:
        results = await asyncio.gather(
            *(try_admit(first, [scope]) for _ in range(30)), *(try_admit(second, [scope]) for _ in range(30))
        )
    finally:
        await first.close()
        await second.close()
    assert sum(r is not None for r in results) == 10


async def test_two_processes_admit_exactly_the_limit(redis_url: str) -> None:
    """Two OS processes hammering one rpm limit through Redis admit exactly the limit in total."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:{{limits}}:"
    args = [sys.executable, "-m", "tests.integration._limits_worker", redis_url, prefix, "300", "2"]
    procs = [
        await asyncio.create_subprocess_exec(
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line.strip() == b"ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    counts = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, err.decode()
        counts.append(int(out))
    assert sum(counts) == 300, counts


async def test_refusal_carries_retry_after_and_ratelimit_headers(make: Factory) -> None:
    """A 429 says when to retry and reports the exhausted scope's limit and remaining requests."""
    limiter = make()
    scope = Scope("key", "k", rpm=2, tpm=1000)
    await limiter.admit("a", [scope], 100, 0.0)
    await limiter.admit("b", [scope], 100, 0.0)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit("c", [scope], 100, 0.0)
    err = caught.value
    assert err.http_status == 429 and err.code == "rate_limit_exceeded"
    assert 1 <= int(err.headers["retry-after"]) <= 60
    assert 55_000 <= int(err.headers["retry-after-ms"]) <= 60_000
    assert err.headers["x-ratelimit-limit-requests"] == "2"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-limit-tokens"] == "1000"
    assert err.headers["x-ratelimit-remaining-tokens"] == "800"
    assert "x-should-retry" not in err.headers


async def test_success_headers_report_the_tightest_scope(make: Factory) -> None:
    """An admitted call's x-ratelimit-* headers come from the scope with the least left."""
    limiter = make()
    key = Scope("key", "k", rpm=100, tpm=500)
    team = Scope("team", "t", rpm=3, tpm=100_000)
    admission = await limiter.admit("a", [key, team], 120, 0.0)
    assert dict(admission.headers) == {
        b"x-ratelimit-limit-requests": b"3",
        b"x-ratelimit-remaining-requests": b"2",
        b"x-ratelimit-limit-tokens": b"500",
        b"x-ratelimit-remaining-tokens": b"380",
    }


async def test_admission_is_all_or_nothing_across_scopes(make: Factory) -> None:
    """A call refused by its team reserves nothing on its key, user or deployment."""
    limiter = make()
    key = Scope("key", "k", rpm=5, max_parallel=5)
    team = Scope("team", "t", rpm=2)
    deployment = Scope("deployment", "openai/gpt-4o", tpm=10_000)
    for _ in range(2):
        assert await try_admit(limiter, [key, team, deployment]) is not None
    assert await try_admit(limiter, [key, team, deployment]) is None
    assert (await limiter.usage(key)).requests == 2
    assert (await limiter.usage(key)).in_flight == 2
    assert (await limiter.usage(deployment)).tokens == 20


async def test_scopes_without_limits_cost_nothing(make: Factory) -> None:
    """Scopes that set no limit are skipped: the call is admitted with no headers."""
    limiter = make()
    admission = await limiter.admit("a", [Scope("key", "k"), Scope("team", "t")], 10, 0.0)
    assert admission.scopes == () and admission.headers == []
    await limiter.settle(admission, 10, 0.01)


# --- tokens per minute ---


async def test_tpm_reserves_the_estimate_and_settle_frees_the_difference(make: Factory) -> None:
    """A tpm reservation blocks others until settle replaces it with the smaller real usage."""
    limiter = make()
    scope = Scope("key", "k", tpm=1000)
    first = await limiter.admit("a", [scope], 800, 0.0)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit("b", [scope], 300, 0.0)
    assert caught.value.headers["x-ratelimit-remaining-tokens"] == "200"
    await limiter.settle(first, 200, 0.0)
    await limiter.admit("b", [scope], 300, 0.0)
    assert (await limiter.usage(scope)).tokens == 500


async def test_tpm_settle_higher_charges_the_real_usage(make: Factory) -> None:
    """Real usage above the estimate counts in full against the window."""
    limiter = make()
    scope = Scope("key", "k", tpm=1000)
    await limiter.settle(await limiter.admit("a", [scope], 100, 0.0), 900, 0.0)
    assert (await limiter.usage(scope)).tokens == 900
    assert await try_admit(limiter, [scope], tokens=200) is None


async def test_request_larger_than_tpm_is_refused_without_retry(make: Factory) -> None:
    """A call whose estimate alone exceeds tpm gets a 429 telling the SDK not to retry."""
    limiter = make()
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit("a", [Scope("key", "k", tpm=1000)], 1500, 0.0)
    assert caught.value.headers["x-should-retry"] == "false"
    assert "too large" in caught.value.message


# --- parallel calls ---


async def test_max_parallel_counts_calls_in_flight(make: Factory) -> None:
    """max_parallel 2 admits two calls; a third waits for a settle or a release."""
    limiter = make()
    scope = Scope("key", "k", max_parallel=2)
    first = await limiter.admit("a", [scope], 10, 0.0)
    second = await limiter.admit("b", [scope], 10, 0.0)
    assert await try_admit(limiter, [scope]) is None
    await limiter.settle(first, 10, 0.0)
    third = await limiter.admit("c", [scope], 10, 0.0)
    await limiter.release(second)
    await limiter.admit("d", [scope], 10, 0.0)
    assert (await limiter.usage(scope)).in_flight == 2
    await limiter.settle(third, 1, 0.0)
    assert (await limiter.usage(scope)).in_flight == 1


async def test_release_gives_everything_back(make: Factory) -> None:
    """A call released before using anything frees its request, tokens, slot and budget."""
    limiter = make()
    scope = Scope("key", "k", rpm=1, tpm=100, max_parallel=1, budget_usd=1.0)
    admission = await limiter.admit("a", [scope], 100, 1.0)
    assert await try_admit(limiter, [scope], tokens=1, cost=0.0) is None
    await limiter.release(admission)
    usage = await limiter.usage(scope)
    assert (usage.requests, usage.tokens, usage.in_flight, usage.reserved_usd) == (0, 0, 0, 0.0)
    await limiter.admit("b", [scope], 100, 1.0)


async def test_settle_and_release_happen_once(make: Factory) -> None:
    """Settling an admission twice (or releasing it after) charges its cost only once."""
    limiter = make()
    scope = Scope("key", "k", rpm=10, budget_usd=10.0)
    admission = await limiter.admit("a", [scope], 10, 0.5)
    await limiter.settle(admission, 10, 0.25)
    await limiter.settle(admission, 10, 0.25)
    await limiter.release(admission)
    usage = await limiter.usage(scope)
    assert usage.spent_usd == pytest.approx(0.25) and usage.requests == 1


# --- budgets ---


async def test_budget_refusal_is_insufficient_quota_without_retry(make: Factory) -> None:
    """An exhausted budget answers 429 insufficient_quota with x-should-retry: false."""
    limiter = make()
    scope = Scope("team", "t", rpm=100, budget_usd=0.10, budget_period="1d")
    await limiter.settle(await limiter.admit("a", [scope], 10, 0.10), 10, 0.10)
    with pytest.raises(QuotaExceededError) as caught:
        await limiter.admit("b", [scope], 10, 0.0)
    err = caught.value
    assert err.http_status == 429 and err.code == "insufficient_quota"
    assert err.headers["x-should-retry"] == "false"
    assert "team 't'" in err.message and "resets at" in err.message


async def test_budget_refuses_a_call_whose_worst_case_does_not_fit(make: Factory) -> None:
    """A call is refused when its worst-case cost exceeds what is left, even if something is left."""
    limiter = make()
    scope = Scope("key", "k", budget_usd=1.0)
    await limiter.settle(await limiter.admit("a", [scope], 10, 0.9), 10, 0.9)
    with pytest.raises(QuotaExceededError):
        await limiter.admit("b", [scope], 10, 0.2)
    await limiter.admit("c", [scope], 10, 0.1)


async def test_concurrent_calls_overshoot_a_budget_only_by_underestimates(make: Factory) -> None:
    """200 concurrent calls on a $1 budget: reservations never exceed it, and after settle the
    overshoot is at most what admitted calls cost beyond their reservations."""
    limiter = make()
    scope = Scope("key", "k", budget_usd=1.0, budget_period="1d")
    estimate = 0.05

    async def call(i: int) -> float | None:
        try:
            admission = await limiter.admit(f"r{i}", [scope], 10, estimate)
        except QuotaExceededError:
            return None
        await asyncio.sleep(0.01 * (i % 5))  # the upstream call
        actual = estimate * (1.2 if i % 2 else 0.5)  # half cost more than reserved
        await limiter.settle(admission, 10, actual)
        return actual

    results = await asyncio.gather(*(call(i) for i in range(200)))
    costs = [c for c in results if c is not None]
    spent = (await limiter.usage(scope)).spent_usd
    assert spent == pytest.approx(sum(costs))
    underestimate = sum(max(0.0, c - estimate) for c in costs)
    assert spent <= 1.0 + underestimate + 1e-9
    assert spent - 1.0 <= len(costs) * estimate  # never more than the calls that were in flight
    assert (await limiter.usage(scope)).reserved_usd == 0


async def test_abandoned_reservations_expire(make: Factory) -> None:
    """A call that never settles (crashed process) stops holding its slot and budget after its TTL."""
    limiter = make()
    scope = Scope("key", "k", max_parallel=1, budget_usd=0.10)
    await limiter.admit("lost", [scope], 10, 0.10, ttl_s=0.3)
    with pytest.raises(RateLimitError):
        await limiter.admit("b", [scope], 10, 0.01)
    await asyncio.sleep(0.4)
    await limiter.admit("b", [scope], 10, 0.01)
    usage = await limiter.usage(scope)
    assert usage.in_flight == 1 and usage.reserved_usd == pytest.approx(0.01)


async def test_settle_after_expiry_still_records_the_spend(make: Factory) -> None:
    """A call that outlives its reservation is still charged once, and frees nothing twice."""
    limiter = make()
    scope = Scope("key", "k", max_parallel=1, budget_usd=1.0)
    slow = await limiter.admit("slow", [scope], 10, 0.5, ttl_s=0.2)
    await asyncio.sleep(0.3)
    other = await limiter.admit("other", [scope], 10, 0.2)
    await limiter.settle(slow, 10, 0.3)
    usage = await limiter.usage(scope)
    assert usage.spent_usd == pytest.approx(0.3) and usage.reserved_usd == pytest.approx(0.2)
    assert usage.in_flight == 1
    await limiter.settle(other, 10, 0.2)


async def test_soft_budget_alert_fires_once_per_period(make: Factory) -> None:
    """Crossing the soft budget is reported by exactly one settle per period."""
    clock = Clock()
    limiter = make(clock=clock)
    scope = Scope("user", "u", soft_budget_usd=0.10, budget_period="1d")
    alerts = []
    for _ in range(4):
        result = await limiter.settle(await limiter.admit("a", [scope], 10, 0.06), 10, 0.06)
        alerts.append(result.soft_alerts)
    assert [len(a) for a in alerts] == [0, 1, 0, 0]
    alert = alerts[1][0]
    assert alert.scope == scope and alert.spent_usd == pytest.approx(0.12)
    assert alert.period_start == period_start("1d", clock())
    clock.offset += 86400
    result = await limiter.settle(await limiter.admit("b", [scope], 10, 0.2), 10, 0.2)
    assert len(result.soft_alerts) == 1 and result.soft_alerts[0].spent_usd == pytest.approx(0.2)


async def test_concurrent_settles_alert_once(make: Factory) -> None:
    """Many calls settling at once past the soft budget produce a single alert."""
    limiter = make()
    scope = Scope("team", "t", soft_budget_usd=0.05)
    admissions = [await limiter.admit(f"r{i}", [scope], 10, 0.01) for i in range(20)]
    results = await asyncio.gather(*(limiter.settle(a, 10, 0.01) for a in admissions))
    assert sum(len(r.soft_alerts) for r in results) == 1


async def test_budget_resets_when_the_period_rolls_over(make: Factory) -> None:
    """An hourly budget spent out is available again in the next hour; a lifetime one is not."""
    clock = Clock()
    limiter = make(clock=clock)
    hourly = Scope("key", "h", budget_usd=0.10, budget_period="1h")
    lifetime = Scope("key", "l", budget_usd=0.10)
    for scope in (hourly, lifetime):
        await limiter.settle(await limiter.admit("a", [scope], 10, 0.10), 10, 0.10)
        with pytest.raises(QuotaExceededError):
            await limiter.admit("b", [scope], 10, 0.01)
    clock.offset += 3600
    await limiter.admit("c", [hourly], 10, 0.01)
    assert (await limiter.usage(hourly)).spent_usd == 0
    clock.offset += 40 * 86400
    with pytest.raises(QuotaExceededError):
        await limiter.admit("d", [lifetime], 10, 0.01)


async def test_seeded_spend_counts_and_never_lowers_the_counter(make: Factory) -> None:
    """Spend seeded from the ledger counts toward the budget; seeding a smaller figure changes nothing."""
    clock = Clock()
    limiter = make(clock=clock)
    scope = Scope("team", "t", budget_usd=1.0, budget_period="7d", soft_budget_usd=0.5)
    start = period_start("7d", clock())
    await limiter.seed_spend(scope, start, 0.95)
    await limiter.seed_spend(scope, start, 0.10)
    with pytest.raises(QuotaExceededError):
        await limiter.admit("a", [scope], 10, 0.10)
    result = await limiter.settle(await limiter.admit("b", [scope], 10, 0.04), 10, 0.04)
    assert result.soft_alerts == ()  # the seeded spend was already past the soft budget
    assert (await limiter.usage(scope)).spent_usd == pytest.approx(0.99)


async def test_changing_a_budget_period_starts_a_fresh_counter(make: Factory) -> None:
    """Spend counted under a daily budget does not leak into a weekly one starting the same instant."""
    clock = Clock()
    limiter = make(clock=clock)
    # A minute into next Monday (UTC): a day and a week begin together. In the future, so Redis
    # does not expire the period's keys (they live until the period's end plus a day).
    next_monday = period_start("7d", time.time()) + 7 * 86400
    clock.offset = next_monday + 60 - time.time()
    daily = Scope("key", "k", budget_usd=1.0, budget_period="1d")
    await limiter.settle(await limiter.admit("a", [daily], 10, 0.5), 10, 0.5)
    weekly = Scope("key", "k", budget_usd=1.0, budget_period="7d")
    assert (await limiter.usage(weekly)).spent_usd == 0


# --- windows slide (memory only: Redis windows run on Redis's own clock) ---


async def test_rpm_window_slides_after_sixty_seconds() -> None:
    """Requests leave the window 60 s after admission, and retry-after says exactly when."""
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    scope = Scope("key", "k", rpm=2)
    await limiter.admit("a", [scope], 1, 0.0)
    clock.offset += 20
    await limiter.admit("b", [scope], 1, 0.0)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit("c", [scope], 1, 0.0)
    assert 39_000 < int(caught.value.headers["retry-after-ms"]) <= 40_000
    clock.offset += 40.01
    await limiter.admit("c", [scope], 1, 0.0)
    with pytest.raises(RateLimitError):
        await limiter.admit("d", [scope], 1, 0.0)


async def test_tokens_beyond_the_reservation_count_after_the_window() -> None:
    """A call settled after its entry left the window still charges what it used beyond its estimate."""
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    scope = Scope("key", "k", tpm=1000)
    admission = await limiter.admit("a", [scope], 100, 0.0)
    clock.offset += 61
    await limiter.settle(admission, 700, 0.0)
    assert (await limiter.usage(scope)).tokens == 600


# --- scopes, periods and the factory ---


def test_scope_rejects_negative_limits_and_unknown_periods() -> None:
    """Negative limits, NaN budgets, unknown kinds and unknown periods are refused at construction."""
    for bad in (
        {"rpm": -1},
        {"tpm": -5},
        {"max_parallel": -1},
        {"budget_usd": -0.01},
        {"budget_usd": float("nan")},
        {"soft_budget_usd": -1.0},
        {"budget_period": "2d"},
    ):
        with pytest.raises(ValueError):
            Scope("key", "k", **bad)
    with pytest.raises(ValueError):
        Scope("org", "o")


def test_periods_start_on_utc_boundaries() -> None:
    """Hours start on the hour, days at 00:00 UTC, weeks on Monday, 30d periods at epoch multiples."""
    t = datetime(2025, 6, 5, 13, 45, 12, tzinfo=UTC).timestamp()  # a Thursday
    assert period_start("1h", t) == datetime(2025, 6, 5, 13, tzinfo=UTC).timestamp()
    assert period_start("1d", t) == datetime(2025, 6, 5, tzinfo=UTC).timestamp()
    assert period_start("7d", t) == datetime(2025, 6, 2, tzinfo=UTC).timestamp()  # Monday
    start = period_start("30d", t)
    assert start % (30 * 86400) == 0 and start <= t < start + 30 * 86400
    assert period_start(None, t) == 0 and period_end(None, 0) is None
    assert period_end("7d", period_start("7d", t)) == datetime(2025, 6, 9, tzinfo=UTC).timestamp()


async def test_make_limiter_picks_redis_only_when_configured(redis_url: str) -> None:
    """No redis_url gives the in-process limiter; a redis_url gives the shared one."""
    memory = make_limiter(None)
    shared = make_limiter(redis_url)
    try:
        assert isinstance(memory, MemoryLimiter)
        assert isinstance(shared, RedisLimiter)
    finally:
        await shared.close()


# --- the Redis connection under failure ---


async def test_unreachable_redis_fails_admit_closed_and_settle_quietly() -> None:
    """With Redis down, admit raises a 503 at once and settle/release return without raising."""
    from tests.conftest import free_port

    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    scope = Scope("key", "k", rpm=10)
    try:
        with pytest.raises(LimiterUnavailableError) as caught:
            await limiter.admit("a", [scope], 10, 0.0)
        assert caught.value.http_status == 503
        began = time.perf_counter()
        with pytest.raises(LimiterUnavailableError):  # fails fast: no reconnect storm
            await limiter.admit("b", [scope], 10, 0.0)
        assert time.perf_counter() - began < 0.1
        orphan = Admission("c", "x", (scope,), 10, 0.0, 0.0, state=[(1, "br", "bg")])
        assert (await limiter.settle(orphan, 10, 0.0)).soft_alerts == ()
    finally:
        await limiter.close()


async def test_a_redis_that_never_answers_times_out() -> None:
    """A server that accepts but never replies turns into a 503 after the timeout, not a hang."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    try:
        began = time.perf_counter()
        with pytest.raises(LimiterUnavailableError):
            await limiter.admit("a", [Scope("key", "k", rpm=10)], 10, 0.0)
        assert 0.15 < time.perf_counter() - began < 1.0
    finally:
        await limiter.close()
        server.close()


async def test_scripts_are_reloaded_after_redis_forgets_them(redis_url: str) -> None:
    """After SCRIPT FLUSH (or a Redis restart) the next call loads the script again and succeeds."""
    import redis.asyncio as aioredis

    limiter = RedisLimiter(redis_url, prefix=f"test-{uuid.uuid4().hex[:10]}:{{limits}}:")
    admin = aioredis.Redis.from_url(redis_url)
    scope = Scope("key", "k", rpm=10)
    try:
        await limiter.admit("a", [scope], 10, 0.0)
        await admin.script_flush()
        await limiter.admit("b", [scope], 10, 0.0)
        assert (await limiter.usage(scope)).requests == 2
    finally:
        await limiter.close()
        await admin.aclose()


async def test_a_dropped_connection_is_reopened(redis_url: str) -> None:
    """When Redis closes the limiter's connection, the next call reconnects."""
    import redis.asyncio as aioredis

    limiter = RedisLimiter(redis_url, prefix=f"test-{uuid.uuid4().hex[:10]}:{{limits}}:")
    admin = aioredis.Redis.from_url(redis_url)
    scope = Scope("key", "k", rpm=10)
    try:
        await limiter.admit("a", [scope], 10, 0.0)
        await admin.client_kill_filter(_type="normal", skipme=True)
        await asyncio.sleep(0.05)
        await limiter.admit("b", [scope], 10, 0.0)
        assert (await limiter.usage(scope)).requests == 2
    finally:
        await limiter.close()
        await admin.aclose()


async def test_cancelled_admission_gives_its_reservation_back(redis_url: str) -> None:
    """A caller cancelled while its admit is in flight (client gone) does not pin a parallel slot."""
    limiter = RedisLimiter(redis_url, prefix=f"test-{uuid.uuid4().hex[:10]}:{{limits}}:")
    scope = Scope("key", "k", max_parallel=1, budget_usd=1.0)
    try:
        await limiter.usage(scope)  # connected, so the admit below is sent on its first step
        task = asyncio.ensure_future(limiter.admit("a", [scope], 10, 0.5))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(50):
            usage = await limiter.usage(scope)
            if usage.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert usage.in_flight == 0 and usage.reserved_usd == 0
        await limiter.admit("b", [scope], 10, 0.5)
    finally:
        await limiter.close()


async def test_the_database_in_the_url_is_used(redis_url: str) -> None:
    """`redis://host:port/3` keeps the limiter's keys in database 3."""
    import redis.asyncio as aioredis

    prefix = f"test-{uuid.uuid4().hex[:10]}:{{limits}}:"
    limiter = RedisLimiter(redis_url.rsplit("/", 1)[0] + "/3", prefix=prefix)
    db3 = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    try:
        await limiter.admit("a", [Scope("key", "k", rpm=10)], 10, 0.0)
        assert await db3.exists(f"{prefix}key:k:rq") == 1
    finally:
        await limiter.close()
        await db3.aclose()


def test_redis_limiter_runs_on_uvloop(redis_url: str) -> None:
    """The gateway's event loop (uvloop) drives the Redis connection: admit, refuse, settle."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[int, int]:
        limiter = RedisLimiter(redis_url, prefix=f"test-{uuid.uuid4().hex[:10]}:{{limits}}:")
        scope = Scope("key", "k", rpm=5, budget_usd=1.0)
        try:
            results = await asyncio.gather(*(try_admit(limiter, [scope], cost=0.01) for _ in range(8)))
            for admission in results:
                if admission is not None:
                    await limiter.settle(admission, 5, 0.01)
            usage = await limiter.usage(scope)
            return sum(r is not None for r in results), round(usage.spent_usd * 100)
        finally:
            await limiter.close()

    assert uvloop.run(scenario()) == (5, 5)
