"""Issue #4's "done when", end to end: real gateway processes, real Redis and Postgres (or SQLite),
virtual keys made through the admin API, the official OpenAI SDK as the client.

Limits hold exactly across processes, budgets overshoot by at most what was in flight, spend is
priced from the price table arithmetic, billed once, reported by the admin API and the CLI, and
survives a SIGKILL within the documented window.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request, run_gateway

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT_BODY = json.dumps({"model": "demo", "messages": MESSAGES}).encode()
# `priced`: a mock model with a price override, so costs are not zero.
IN_PRICE, OUT_PRICE = 100.0, 1000.0  # USD per million tokens
TWELVE_WORDS = " ".join(f"w{i}" for i in range(12))


def config(database_url: str, redis_url: str | None = None, extra: str = "") -> str:
    return f"""
master_key: {MASTER_KEY}
database_url: {database_url}
{f"redis_url: {redis_url}" if redis_url else ""}
models:
  - name: demo
    provider: mock
  - name: priced
    provider: mock
    mock: {{reply: "{TWELVE_WORDS}", latency_ms: 50}}
    price: {{input_per_mtok: {IN_PRICE}, output_per_mtok: {OUT_PRICE}}}
  - name: priced-stream
    provider: mock
    mock: {{reply: "{TWELVE_WORDS}"}}
    price: {{input_per_mtok: {IN_PRICE}, output_per_mtok: {OUT_PRICE}}}
  - name: priced-cut
    provider: mock
    mock: {{reply: "{TWELVE_WORDS}", cut_after_tokens: 3}}
    price: {{input_per_mtok: {IN_PRICE}, output_per_mtok: {OUT_PRICE}}}
{extra}
"""


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {MASTER_KEY}"}
    data = None if body is None else json.dumps(body).encode()
    status, _, payload = raw_request(gw.url, method, path, data, headers)
    return status, json.loads(payload) if payload else None


def new_key(gw: GatewayProcess, **fields: Any) -> dict[str, Any]:
    status, key = admin(gw, "POST", "/admin/keys", fields)
    assert status == 201, key
    return dict(key)


def chat_status(url: str, key: str, body: bytes = CHAT_BODY) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    return raw_request(url, "POST", "/v1/chat/completions", body, headers, timeout=30)


def wait_for(check: Any, timeout: float = 5.0) -> Any:
    """Poll `check()` until it returns something truthy (ledger rows land within the flush interval)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def ledger_for(gw: GatewayProcess, key_id: str) -> list[dict[str, Any]]:
    """The key's spend as the admin API reports it (one group)."""
    status, report = admin(gw, "GET", f"/admin/spend?group_by=key&key_id={key_id}")
    assert status == 200, report
    return [g for g in report["data"] if g["group"] == key_id]


def fresh_pg(postgres_url: str) -> str:
    from tests.integration.conftest import fresh_postgres_database

    return asyncio.run(fresh_postgres_database(postgres_url))


# ------------------------------------------------------------------------------------------ rate limits


@pytest.fixture(scope="module")
def pair(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway processes (two "machines") on one Postgres database and one Redis."""
    text = config(fresh_pg(postgres_url), redis_url)
    with ExitStack() as stack:
        a = stack.enter_context(run_gateway(tmp_path_factory.mktemp("a"), text))
        b = stack.enter_context(run_gateway(tmp_path_factory.mktemp("b"), text))
        yield a, b


def test_rpm_is_exact_across_two_gateway_processes_sharing_redis(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    """A key with rpm 10 called 30 times, alternating between two processes, gets exactly 10 answers."""
    a, b = pair
    key = new_key(a, alias="rpm10", rpm=10)
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: chat_status((a, b)[i % 2].url, key["key"]), range(30)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    refused = next(headers for status, headers, _ in results if status == 429)
    assert int(refused["retry-after"]) >= 1
    assert refused["x-ratelimit-limit-requests"] == "10" and refused["x-ratelimit-remaining-requests"] == "0"
    body = json.loads(next(body for status, _, body in results if status == 429))
    assert body["error"]["code"] == "rate_limit_exceeded"
    ok = next(headers for status, headers, _ in results if status == 200)
    assert ok["x-ratelimit-limit-requests"] == "10"


def test_a_revoked_key_fails_on_every_process_within_a_second(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    """Revoked through one process, a key cached by both is refused by both in under 1 s."""
    a, b = pair
    key = new_key(a, alias="revoke-me")
    assert chat_status(a.url, key["key"])[0] == 200 and chat_status(b.url, key["key"])[0] == 200
    assert admin(a, "DELETE", f"/admin/keys/{key['id']}")[0] == 200
    revoked_at = time.monotonic()
    for gw in (a, b):
        status = wait_for(lambda gw=gw: chat_status(gw.url, key["key"])[0] == 401, timeout=1.0)
        assert status, f"{gw.url} still accepted the key"
    assert time.monotonic() - revoked_at < 1.0


def test_rpm_is_exact_across_two_workers(redis_url: str, tmp_path: Path) -> None:
    """`serve --workers 2` with Redis: 30 calls of an rpm-10 key on fresh connections get exactly 10."""
    text = config(f"sqlite:///{tmp_path}/sg.db", redis_url)
    with run_gateway(tmp_path, text, extra_args=("--workers", "2")) as gw:
        # Ready means one worker answers; wait until the second one does too.
        seen: set[str] = set()
        while len(seen) < 2:
            seen.add(raw_request(gw.url, "GET", "/health/ready")[1]["x-request-id"].split("-")[1])
        key = new_key(gw, alias="rpm10-workers", rpm=10)
        results: list[tuple[int, dict[str, str], bytes]] = []
        # Rounds of concurrent calls on fresh connections until both workers have answered some.
        while True:
            with ThreadPoolExecutor(10) as pool:
                results += pool.map(lambda _: chat_status(gw.url, key["key"]), range(10))
            pids = {headers["x-request-id"].split("-")[1] for _, headers, _ in results}
            if len(pids) == 2 and len(results) >= 30:
                break
            assert len(results) < 200, "the kernel never spread connections over both workers"
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 10 and statuses.count(429) == len(results) - 10


# ------------------------------------------------------------------------------------------ money


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway on the embedded defaults (SQLite, in-process limits)."""
    tmp = tmp_path_factory.mktemp("solo")
    with run_gateway(tmp, config(f"sqlite:///{tmp}/sg.db")) as gw:
        yield gw


def expected_cost(prompt: int, completion: int) -> float:
    return (prompt * IN_PRICE + completion * OUT_PRICE) / 1_000_000


def test_cost_header_matches_the_price_arithmetic_and_the_ledger(solo: GatewayProcess) -> None:
    """x-sluicegate-cost-usd is usage x price; /admin/spend and `sluicegate spend` report the same spend."""
    key = new_key(solo, alias="costs")
    total = 0.0
    with openai.OpenAI(base_url=solo.v1, api_key=key["key"], max_retries=0) as client:
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model="priced", messages=MESSAGES)  # type: ignore[arg-type]
            reply = raw.parse()
            assert reply.usage is not None
            cost = expected_cost(reply.usage.prompt_tokens, reply.usage.completion_tokens)
            assert float(raw.headers["x-sluicegate-cost-usd"]) == pytest.approx(cost, abs=1e-10)
            total += cost
    groups = wait_for(lambda: [g for g in ledger_for(solo, key["id"]) if g["requests"] == 3])
    assert groups and groups[0]["cost_usd"] == pytest.approx(total)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env.update({"SLUICEGATE_MASTER_KEY": MASTER_KEY, "SLUICEGATE_URL": solo.url})
    out = subprocess.run(
        [sys.executable, "-m", "sluicegate", "spend", "--by", "key", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    rows = {row["group"]: row for row in json.loads(out.stdout)["data"]}
    assert rows[key["id"]]["cost_usd"] == pytest.approx(total) and rows[key["id"]]["requests"] == 3


def test_a_streamed_call_is_billed_once_from_its_streamed_usage(solo: GatewayProcess) -> None:
    """A stream's ledger row carries the usage the stream reported, priced, exactly once."""
    key = new_key(solo, alias="stream")
    with openai.OpenAI(base_url=solo.v1, api_key=key["key"], max_retries=0) as client:
        stream = client.chat.completions.create(
            model="priced-stream",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(usage) == 1
    cost = expected_cost(usage[0].prompt_tokens, usage[0].completion_tokens)
    logs = wait_for(lambda: admin(solo, "GET", f"/admin/logs?key_id={key['id']}")[1]["data"])
    assert len(logs) == 1 and logs[0]["stream"] is True and logs[0]["usage_source"] == "provider"
    assert logs[0]["cost_usd"] == pytest.approx(cost)
    groups = ledger_for(solo, key["id"])
    assert groups[0]["requests"] == 1 and groups[0]["cost_usd"] == pytest.approx(cost)
    assert groups[0]["output_tokens"] == usage[0].completion_tokens


def test_a_cut_stream_is_billed_for_what_was_streamed_by_counting(solo: GatewayProcess) -> None:
    """A stream cut after its first byte, with no usage from the provider, is billed from counted tokens."""
    key = new_key(solo, alias="cut")
    with openai.OpenAI(base_url=solo.v1, api_key=key["key"], max_retries=0) as client:
        stream = client.chat.completions.create(model="priced-cut", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
    logs = wait_for(lambda: admin(solo, "GET", f"/admin/logs?key_id={key['id']}")[1]["data"])
    assert len(logs) == 1
    row = logs[0]
    assert row["usage_source"] == "counted" and row["status_code"] == 200 and row["error_code"]
    assert row["output_tokens"] >= 1 and row["cost_usd"] > 0  # "w0 w1 w2 " streamed: counted, priced
    assert row["cost_usd"] == pytest.approx(expected_cost(row["input_tokens"], row["output_tokens"]))
    # The ledger holds exactly one row for the call, marked partial (issue #5: cut mid-stream).
    with sqlite3.connect(solo.log_path.parent / "sg.db") as conn:
        ledger_rows = conn.execute(
            "SELECT partial, usage_source, cost_usd FROM ledger WHERE key_id = ?", (key["id"],)
        ).fetchall()
    assert len(ledger_rows) == 1
    partial, source, cost = ledger_rows[0]
    assert partial and source == "counted" and cost == pytest.approx(row["cost_usd"])


def test_an_exhausted_budget_is_insufficient_quota_and_the_sdk_does_not_retry(solo: GatewayProcess) -> None:
    """A key over its budget gets 429 insufficient_quota with x-should-retry: false; the SDK (max_retries=2)
    sends it once."""
    key = new_key(solo, alias="broke", budget_usd=0.0001)
    with (
        openai.OpenAI(base_url=solo.v1, api_key=key["key"], max_retries=2) as client,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client.chat.completions.create(model="priced", messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    assert caught.value.code == "insufficient_quota"
    assert caught.value.response.headers["x-should-retry"] == "false"
    wait_for(lambda: admin(solo, "GET", f"/admin/logs?key_id={key['id']}")[1]["data"])
    time.sleep(0.3)  # a retry would have been logged by now too
    logs = admin(solo, "GET", f"/admin/logs?key_id={key['id']}")[1]["data"]
    assert [(r["status_code"], r["error_code"]) for r in logs] == [(429, "insufficient_quota")]


def test_concurrent_calls_overshoot_a_budget_by_at_most_what_was_in_flight(solo: GatewayProcess) -> None:
    """200 concurrent calls on a $0.25 budget: spend stays within the budget plus the overrun of the calls
    that can be in flight together, and the budget is really used up."""
    budget = 0.25
    key = new_key(solo, alias="budget", budget_usd=budget)
    body = json.dumps({"model": "priced", "messages": MESSAGES, "max_tokens": 10}).encode()
    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(lambda _: chat_status(solo.url, key["key"], body), range(200)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429}
    assert all(json.loads(b)["error"]["code"] == "insufficient_quota" for s, _, b in results if s == 429)
    groups = wait_for(
        lambda: [g for g in ledger_for(solo, key["id"]) if g["requests"] == statuses.count(200)]
    )
    spent = groups[0]["cost_usd"]
    # Admission reserves the worst case: the gateway's prompt estimate ("hi" in one message: 8 tokens)
    # at the input price plus max_tokens (10) at the output price. The mock ignores max_tokens and
    # answers 12 words, so each call can cost more than it reserved; only calls admitted together
    # (at most budget / reservation of them) can overrun the budget, each by that difference.
    reserved = expected_cost(8, 10)
    actual = spent / statuses.count(200)
    in_flight_max = int(budget // reserved)
    bound = budget + in_flight_max * max(0.0, actual - reserved)
    assert spent <= bound + 1e-9, (spent, bound)
    assert spent >= budget - reserved  # the budget was used, not refused early
    assert statuses.count(429) > 0


# ------------------------------------------------------------------------------------------ durability


def test_sigkill_under_load_loses_no_acknowledged_spend(tmp_path: Path) -> None:
    """SIGKILL during load: every call the client saw answered (200) is in the ledger once the gateway
    has restarted (the journal written before each answer's last byte is replayed at start)."""
    db = tmp_path / "sg.db"
    text = config(f"sqlite:///{db}")
    acked: list[str] = []
    stop = threading.Event()

    def load(url: str) -> None:
        while not stop.is_set():
            try:
                status, headers, _ = chat_status(url, MASTER_KEY)
            except Exception:  # the kill: refused, reset or cut connections all end the load
                return
            if status == 200:
                acked.append(headers["x-request-id"])

    with run_gateway(tmp_path, text) as gw:
        threads = [threading.Thread(target=load, args=(gw.url,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        os.killpg(gw.process.pid, signal.SIGKILL)
        gw.process.wait(5)
        stop.set()
        for thread in threads:
            thread.join(10)
    assert len(acked) > 200
    with sqlite3.connect(db) as conn:
        before = {row[0] for row in conn.execute("SELECT request_id FROM ledger")}
    # A restart on the same file replays the killed process's journal before it is ready.
    with run_gateway(tmp_path, text), sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT request_id FROM ledger")}
    assert [rid for rid in acked if rid not in stored] == []
    assert len(stored) > len(before)  # some acknowledged rows existed only in the journal
    assert list(Path(f"{db}.journal").glob("*.seg")) == []  # replayed, then removed


# ------------------------------------------------------------------------------------------ alerts


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_a_soft_budget_sends_one_slack_style_alert_per_period(tmp_path: Path) -> None:
    """Crossing a key's soft budget POSTs one `{"text": ...}` to the webhook, however many calls follow."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    try:
        hook = f"alerts: {{webhook_url: 'http://127.0.0.1:{server.server_address[1]}/hook'}}"
        with run_gateway(tmp_path, config(f"sqlite:///{tmp_path}/sg.db", extra=hook)) as gw:
            key = new_key(gw, alias="soft", soft_budget_usd=0.01, budget_period="1d")
            for _ in range(4):  # $0.0124 each: the first call crosses the soft budget
                status, _, _ = chat_status(
                    gw.url, key["key"], json.dumps({"model": "priced", "messages": MESSAGES}).encode()
                )
                assert status == 200  # a soft budget never blocks
            assert wait_for(lambda: _Hook.received, timeout=3)
            time.sleep(0.3)
    finally:
        server.shutdown()
    assert len(_Hook.received) == 1
    assert key["id"] in _Hook.received[0]["text"] and "soft budget" in _Hook.received[0]["text"]
