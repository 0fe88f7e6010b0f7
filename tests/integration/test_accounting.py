"""pipeline/accounting.py on a real SQLite store: budgets over periods, seeding after a restart, rows
written once, counted and unpriced usage. The clock is the limiter's test hook, so a budget period
can end within a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest

from sluicegate.auth.principal import Principal
from sluicegate.config.schema import Config, ModelEntry, Price
from sluicegate.errors import QuotaExceededError
from sluicegate.limits import MemoryLimiter, Scope
from sluicegate.pipeline.accounting import Accounting
from sluicegate.pipeline.context import Attempt, RequestContext
from sluicegate.spend.prices import price_for
from sluicegate.store import Store
from sluicegate.store.migrate import upgrade
from sluicegate.store.writer import RecordWriter
from sluicegate.types import Usage

HOUR = 3600.0
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
ENTRY = ModelEntry(name="m", provider="mock", price=Price(input_per_mtok=1000.0, output_per_mtok=1000.0))


@dataclass
class FakeDeployment:
    """The few Deployment attributes accounting reads."""

    entry: ModelEntry
    price: Any
    label: str = "mock/m"


@dataclass
class FakeGroup:
    """A model group of one deployment, as accounting reads it."""

    deployments: list[FakeDeployment]


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0 - 1_750_000_000.0 % HOUR + 10  # just after the top of an hour

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path}/sg.db"
    await upgrade(url)
    s = Store.from_url(url)
    yield s
    await s.close()


def accounting(store: Store, clock: Clock) -> tuple[Accounting, RecordWriter]:
    records = RecordWriter(store)
    limiter = MemoryLimiter(clock=clock)
    groups = {"m": FakeGroup([FakeDeployment(ENTRY, price_for(ENTRY))])}
    return Accounting(Config(), groups, limiter, records, store, clock=clock), records  # type: ignore[arg-type]


def principal(budget: float, period: str | None = "1h") -> Principal:
    scope = Scope(kind="key", id="k1", budget_usd=budget, budget_period=period)
    return Principal(kind="virtual", key_id="k1", scopes=(scope,))


def ctx_for(p: Principal, rid: str) -> RequestContext:
    return RequestContext(request_id=rid.encode(), started=perf_counter(), principal=p, endpoint="/v1/x")


async def call(acct: Accounting, p: Principal, rid: str, usage: Usage | None = None) -> RequestContext:
    """One admitted call that used `usage` (default: 4 prompt + 10 completion tokens) on `ENTRY`."""
    ctx = ctx_for(p, rid)
    await acct.admit(ctx, "m", BODY)
    ctx.deployment = FakeDeployment(ENTRY, price_for(ENTRY))  # type: ignore[assignment]
    ctx.attempt_log = [Attempt("mock/m", "m", "ok", 200, 0.01)]
    ctx.usage = usage if usage is not None else Usage(prompt_tokens=4, completion_tokens=10)
    await acct.finish(ctx)
    return ctx


async def test_a_budget_refuses_when_spent_and_admits_again_in_the_next_period(store: Store) -> None:
    """Spend past a 1h budget is refused with insufficient_quota until the next hour starts."""
    clock = Clock()
    acct, _ = accounting(store, clock)
    p = principal(budget=0.035)  # each call costs 14 tokens x $1000/M = $0.014; reserves $0.018
    await call(acct, p, "r1")
    await call(acct, p, "r2")
    with pytest.raises(QuotaExceededError):
        await acct.admit(ctx_for(p, "r3"), "m", BODY)
    clock.now += HOUR
    await call(acct, p, "r4")  # a fresh period: admitted


async def test_a_restarted_process_seeds_the_budget_from_the_ledger(store: Store) -> None:
    """After a restart (new limiter, same database) the period's spend still counts against the budget."""
    clock = Clock()
    acct, records = accounting(store, clock)
    p = principal(budget=0.035, period=None)
    await call(acct, p, "r1")
    await call(acct, p, "r2")
    await records.close()  # the SIGTERM flush
    fresh, _ = accounting(store, clock)
    with pytest.raises(QuotaExceededError):
        await fresh.admit(ctx_for(p, "r3"), "m", BODY)


async def test_finish_writes_one_ledger_and_one_log_row_however_often_it_is_called(store: Store) -> None:
    """A second finish (or record) of the same request is a no-op: one ledger row, one log row, one settle."""
    clock = Clock()
    acct, records = accounting(store, clock)
    ctx = await call(acct, principal(budget=1.0), "once")
    acct.record(ctx)
    await acct.finish(ctx)
    await records.flush()
    spend = await store.spend("key")
    assert [(g.group, g.requests) for g in spend] == [("k1", 1)]
    rows, _ = await store.logs({"key_id": "k1"})
    assert [r["request_id"] for r in rows] == ["once"]
    assert spend[0].cost_usd == pytest.approx(14 * 1000 / 1_000_000)


async def test_a_stream_without_usage_is_billed_from_counted_tokens(store: Store) -> None:
    """No provider usage: the prompt estimate plus the streamed text's tokens, marked `counted`."""
    clock = Clock()
    acct, records = accounting(store, clock)
    ctx = ctx_for(principal(budget=1.0), "counted")
    await acct.admit(ctx, "m", BODY)
    ctx.deployment = FakeDeployment(ENTRY, price_for(ENTRY))  # type: ignore[assignment]
    ctx.attempt_log = [Attempt("mock/m", "m", "stream_error", 200, 0.01)]
    ctx.response_started = True
    ctx.frames = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"abcdefgh"}}]}\n\n',  # 8 chars: 2 tokens
    ]
    ctx.error_code = "upstream_bad_response"
    await acct.finish(ctx)
    await records.flush()
    rows, _ = await store.logs({"key_id": "k1"})
    assert rows[0]["usage_source"] == "counted" and rows[0]["output_tokens"] == 2
    assert rows[0]["input_tokens"] == 8  # estimate: 4 per message + 3 for the reply + 1 for "hi"
    assert rows[0]["status_code"] == 200 and rows[0]["error_code"] == "upstream_bad_response"


async def test_an_unknown_model_bills_zero_and_is_marked_unpriced(store: Store) -> None:
    """A deployment without a price bills 0 and tags the rows `unpriced`."""
    clock = Clock()
    acct, records = accounting(store, clock)
    ctx = ctx_for(Principal(kind="master", key_id="master"), "free")
    await acct.admit(ctx, "m", BODY)
    ctx.deployment = FakeDeployment(ENTRY, None)  # type: ignore[assignment]
    ctx.usage = Usage(prompt_tokens=5, completion_tokens=5)
    await acct.finish(ctx)
    await records.flush()
    rows, _ = await store.logs({"key_id": "master"})
    assert rows[0]["cost_usd"] == 0 and rows[0]["tags"] == ["unpriced"]
