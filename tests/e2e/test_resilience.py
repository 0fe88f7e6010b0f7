"""Routing and resilience end to end (issue #5): a real gateway process against fake providers
scripted to fail, stall, answer 429 and cut streams, and mock models with injected faults."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request, run_gateway
from tests.fakes import CutStream, Error, FakeOpenAI, Reply, SlowFirstToken

KEY = "sk-fake-openai-upstream"
USER = [{"role": "user", "content": "hello there"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
FIRST = "openai/gpt-4o-mini#1"
SECOND = "openai/gpt-4o-mini#2"


@pytest.fixture(scope="module")
def fake_a() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_b() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_down() -> Iterator[FakeOpenAI]:
    """A provider answering every call with 503."""
    with FakeOpenAI(api_key=KEY, default=Error(503)) as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_steady() -> Iterator[FakeOpenAI]:
    """A healthy provider taking 20 ms per call, so latency percentiles measure routing, not noise."""
    with FakeOpenAI(api_key=KEY, default=SlowFirstToken(0.02)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> None:
    for name in ("fake_a", "fake_b", "fake_down", "fake_steady"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def entry(name: str, fake: FakeOpenAI, extra: str = "") -> str:
    return (
        f"  - {{name: {name}, provider: openai, model: gpt-4o-mini, api_base: '{fake.base_url}', "
        f"api_key: {KEY}{extra}}}\n"
    )


@pytest.fixture(scope="module")
def gateway(
    fake_a: FakeOpenAI,
    fake_b: FakeOpenAI,
    fake_down: FakeOpenAI,
    fake_steady: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    config = (
        f"master_key: {MASTER_KEY}\n"
        """router:
  retries: 2
  ttft_timeout_s: 1.0
  retry_backoff_s: 0.05
  retry_backoff_max_s: 0.2
  queue_size: 3
  fallbacks: {fb-primary: [fb-second, fb-third]}
  context_window_fallbacks: {cw-small: [cw-big]}
  content_policy_fallbacks: {cp: [cp-clean]}
models:
"""
        + entry("load-healthy", fake_steady)
        + entry("load-faulty", fake_down)
        + entry("load-faulty", fake_steady)
        + entry("single", fake_a)
        + entry("cut", fake_a)
        + entry("cut", fake_b)
        + entry("ttft", fake_a)
        + entry("ttft", fake_b)
        + entry("gone", fake_a)
        + entry("gone", fake_b)
        + entry("slow", fake_a, ", timeout_s: 0.6")
        + entry("cp", fake_a)
        + entry("emb", fake_down)
        + entry("emb", fake_b)
        + """  - {name: fb-primary, provider: mock, mock: {fail_rate: 1.0, fail_status: 503}}
  - {name: fb-second, provider: mock, mock: {fail_rate: 1.0, fail_status: 500}}
  - {name: fb-third, provider: mock, mock: {reply: third}}
  - {name: cw-small, provider: mock, context_window: 50, mock: {reply: small}}
  - {name: cw-big, provider: mock, context_window: 100000, mock: {reply: big}}
  - {name: cp-clean, provider: mock, mock: {reply: clean}}
  - {name: prio, provider: mock, max_parallel: 1, mock: {latency_ms: 300}}
"""
    )
    with run_gateway(tmp_path_factory.mktemp("resilience"), config) as gw:
        yield gw


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)


def post(
    gateway: GatewayProcess, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """One call over a plain HTTP connection; a stream is read to its end."""
    status, got, content = raw_request(
        gateway.url,
        "POST",
        path,
        orjson.dumps(payload),
        {**AUTH, "content-type": "application/json", **(headers or {})},
        timeout=15,
    )
    return Response(status, got, content)


def chat(gateway: GatewayProcess, model: str, headers: dict[str, str] | None = None, **body: Any) -> Response:
    return post(gateway, "/v1/chat/completions", {"model": model, "messages": USER, **body}, headers)


def text_of(response: Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def sse_events(raw: bytes) -> list[bytes]:
    return [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]


# ------------------------------------------------------------------------- the headline


async def _load(
    gateway: GatewayProcess, model: str, calls: int, concurrency: int
) -> tuple[list[int], list[float]]:
    statuses: list[int] = []
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(calls):
        queue.put_nowait(i)
    body = orjson.dumps({"model": model, "messages": USER})
    headers = {**AUTH, "content-type": "application/json"}
    url = f"{gateway.v1}/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                began = time.perf_counter()
                async with client.post(url, data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - began)
                statuses.append(response.status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99) - 1]


async def test_one_of_two_deployments_down_1000_calls_all_succeed(
    gateway: GatewayProcess, fake_down: FakeOpenAI, fake_steady: FakeOpenAI
) -> None:
    """With one of two deployments failing every call, 1,000 calls all succeed, the failing one sees at
    most 10 of them (ejected after 5 consecutive failures), and p99 stays within 2x the healthy p99."""
    await _load(gateway, "load-healthy", 50, 10)  # warm the connection pools
    healthy_statuses, healthy = await _load(gateway, "load-healthy", 1000, 10)
    fake_down.reset()
    statuses, faulty = await _load(gateway, "load-faulty", 1000, 10)
    assert healthy_statuses == [200] * 1000
    assert statuses == [200] * 1000
    assert len(fake_down.requests) <= 10
    assert _p99(faulty) <= 2 * _p99(healthy), (_p99(faulty), _p99(healthy))


# ------------------------------------------------------------------------------ retries


def test_429_retry_after_is_honoured(gateway: GatewayProcess, fake_a: FakeOpenAI) -> None:
    """A 429 with retry-after: 1 from the only deployment is retried after at least a second."""
    fake_a.enqueue(Error(429, headers={"retry-after": "1"}), Reply("second time lucky"))
    began = time.perf_counter()
    response = chat(gateway, "single")
    elapsed = time.perf_counter() - began
    assert response.status_code == 200 and text_of(response) == "second time lucky"
    assert elapsed >= 1.0
    assert response.headers["x-sluicegate-attempts"] == "2"
    assert len(fake_a.requests) == 2


def test_retries_header_zero_returns_the_first_failure(gateway: GatewayProcess, fake_a: FakeOpenAI) -> None:
    """`x-sluicegate-retries: 0` turns retries off for one call: the provider's 503 comes back as 502."""
    fake_a.enqueue(Error(503))
    response = chat(gateway, "single", {"x-sluicegate-retries": "0"})
    assert response.status_code == 502
    assert response.headers["x-sluicegate-attempts"] == "1"
    assert len(fake_a.requests) == 1


def test_total_timeout_includes_retries(gateway: GatewayProcess, fake_a: FakeOpenAI) -> None:
    """With a 1 s total timeout, attempts that each stall are cut so the whole call ends near 1 s (504)."""
    fake_a.enqueue(SlowFirstToken(3), SlowFirstToken(3), SlowFirstToken(3))
    began = time.perf_counter()
    response = chat(gateway, "slow", {"x-sluicegate-timeout-s": "1"})
    elapsed = time.perf_counter() - began
    assert response.status_code == 504
    assert 0.9 <= elapsed < 1.6
    assert int(response.headers["x-sluicegate-attempts"]) >= 2


def test_embeddings_fail_over_too(gateway: GatewayProcess, fake_down: FakeOpenAI, fake_b: FakeOpenAI) -> None:
    """/v1/embeddings uses the same loop: a 503 from one deployment is retried on the other."""
    response = post(gateway, "/v1/embeddings", {"model": "emb", "input": "hi"})
    assert response.status_code == 200 and response.json()["data"]
    assert response.headers["x-sluicegate-attempts"] == "2"
    assert len(fake_down.requests) == 1 and len(fake_b.requests) == 1


# ------------------------------------------------------------------------------ streams


def test_no_retry_after_the_first_byte(
    gateway: GatewayProcess, fake_a: FakeOpenAI, fake_b: FakeOpenAI
) -> None:
    """A stream cut after its first events ends with an in-band error; nothing is sent again anywhere."""
    fake_a.enqueue(CutStream(after_events=3, then=Reply("one two three four five six")))
    response = chat(gateway, "cut", stream=True)
    assert response.status_code == 200
    events = sse_events(response.content)
    assert b"[DONE]" not in events
    assert "error" in orjson.loads(events[-1])
    assert any(orjson.loads(e).get("choices") for e in events[:-1])
    time.sleep(0.3)
    assert len(fake_a.requests) == 1 and len(fake_b.requests) == 0


def test_messages_stream_cut_ends_with_anthropic_error_event_and_no_retry(
    gateway: GatewayProcess, fake_a: FakeOpenAI, fake_b: FakeOpenAI
) -> None:
    """On /v1/messages a stream cut after its first byte ends with `event: error` (Anthropic's shape),
    and is not retried either."""
    for fake in (fake_a, fake_b):  # whichever deployment the group's turn picks
        fake.enqueue(CutStream(after_events=3, then=Reply("one two three four five six")))
    payload = {"model": "cut", "max_tokens": 50, "messages": USER, "stream": True}
    response = post(gateway, "/v1/messages", payload)
    assert response.status_code == 200
    tail = response.content.rstrip().rsplit(b"\n\n", 1)[-1]
    assert tail.startswith(b"event: error\ndata: ")
    error = orjson.loads(tail.split(b"data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error" and error["error"]["message"]
    time.sleep(0.3)
    assert len(fake_a.requests) + len(fake_b.requests) == 1


def test_ttft_deadline_moves_a_stalled_stream_invisibly(
    gateway: GatewayProcess, fake_a: FakeOpenAI, fake_b: FakeOpenAI
) -> None:
    """No first token within ttft_timeout_s (1 s): the stream is served by the next deployment, and the
    client sees a normal stream from it; the abandoned upstream connection is closed."""
    fake_a.enqueue(SlowFirstToken(4.0))
    fake_b.enqueue(Reply("from the second deployment"))
    began = time.perf_counter()
    response = chat(gateway, "ttft", stream=True)
    assert response.status_code == 200
    assert response.headers["x-sluicegate-deployment"] == SECOND
    assert response.headers["x-sluicegate-attempts"] == "2"
    events = sse_events(response.content)
    elapsed = time.perf_counter() - began
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert not any("error" in c for c in chunks)
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert text == "from the second deployment"
    assert 1.0 <= elapsed < 3.0
    deadline = time.monotonic() + 1
    while not fake_a.client_gone_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_a.client_gone_at, "the stalled attempt's connection was left open"


def test_disconnect_cancels_upstream_within_100_ms_and_stops_retrying(
    gateway: GatewayProcess, fake_a: FakeOpenAI, fake_b: FakeOpenAI
) -> None:
    """A client hanging up while its stream waits for a first token closes the upstream call within
    100 ms, and no further attempt is started for it."""
    fake_a.enqueue(SlowFirstToken(5.0))
    body = orjson.dumps({"model": "gone", "messages": USER, "stream": True})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        fake_a.wait_for_requests(1)
        time.sleep(0.3)
        closed_at = time.monotonic()
    deadline = time.monotonic() + 3
    while not fake_a.client_gone_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_a.client_gone_at, "the gateway kept the upstream call open after its client left"
    assert fake_a.client_gone_at[0] - closed_at < 0.1
    time.sleep(1.2)  # past the 1 s TTFT deadline: a live request would have tried fake_b by now
    assert len(fake_b.requests) == 0


# ---------------------------------------------------------------------------- fallbacks


def test_configured_fallbacks_run_in_order(gateway: GatewayProcess) -> None:
    """Primary and first fallback fail every call: the second fallback answers, after 3 + 3 + 1 attempts."""
    response = chat(gateway, "fb-primary")
    assert response.status_code == 200 and text_of(response) == "third"
    assert response.headers["x-sluicegate-attempts"] == "7"


def test_request_fallbacks_header_and_body(gateway: GatewayProcess) -> None:
    """`x-sluicegate-fallbacks` (or `sluicegate.fallbacks`) replaces the configured chain for one call."""
    response = chat(
        gateway, "fb-primary", {"x-sluicegate-fallbacks": "fb-third", "x-sluicegate-retries": "0"}
    )
    assert text_of(response) == "third" and response.headers["x-sluicegate-attempts"] == "2"
    response = chat(gateway, "fb-primary", sluicegate={"fallbacks": ["cw-big"], "retries": 0})
    assert text_of(response) == "big" and response.headers["x-sluicegate-attempts"] == "2"
    response = chat(gateway, "fb-primary", {"x-sluicegate-fallbacks": "no-such-model"})
    assert response.status_code == 404


def test_context_window_fallback_takes_long_prompts_to_the_bigger_model(gateway: GatewayProcess) -> None:
    """A prompt over cw-small's 50-token window goes straight to cw-big; a short one stays."""
    short = chat(gateway, "cw-small")
    assert text_of(short) == "small"
    long = chat(gateway, "cw-small", messages=[{"role": "user", "content": "word " * 200}])
    assert text_of(long) == "big" and long.headers["x-sluicegate-attempts"] == "1"


def test_content_policy_fallback(gateway: GatewayProcess, fake_a: FakeOpenAI) -> None:
    """A content-filter refusal (a 400, or a reply finished by content_filter) goes to the next group."""
    refusal = {
        "error": {
            "message": "filtered",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": "content_filter",
        }
    }
    fake_a.enqueue(Error(400, body=refusal))
    response = chat(gateway, "cp")
    assert response.status_code == 200 and text_of(response) == "clean"
    fake_a.enqueue(Reply("", finish_reason="content_filter"))
    response = chat(gateway, "cp")
    assert response.status_code == 200 and text_of(response) == "clean"
    assert len(fake_a.requests) == 2  # one attempt each: refusals are not retried on the same group


def test_other_4xx_is_not_retried(gateway: GatewayProcess, fake_a: FakeOpenAI) -> None:
    """A provider 400 that is not a content refusal goes to the client after one attempt."""
    fake_a.enqueue(Error(400))
    response = chat(gateway, "cp")
    assert response.status_code == 400 and len(fake_a.requests) == 1


# ----------------------------------------------------------------------------- priority


async def test_priority_queue_order_and_full_queue(gateway: GatewayProcess) -> None:
    """At max_parallel 1, queued calls finish high, normal, low whatever their arrival; beyond the
    queue (3) a call gets 429 with retry-after at once."""
    done: list[str] = []
    url = f"{gateway.v1}/chat/completions"
    payload = {"model": "prio", "messages": USER}
    async with aiohttp.ClientSession(headers=AUTH, timeout=aiohttp.ClientTimeout(total=15)) as client:

        async def call(name: str, priority: str) -> int:
            async with client.post(
                url, json=payload, headers={"x-sluicegate-priority": priority}
            ) as response:
                await response.read()
            done.append(name)
            return response.status

        tasks = [asyncio.create_task(call("first", "low"))]
        for name, priority in (("low", "low"), ("normal", "normal"), ("high", "high")):
            await asyncio.sleep(0.05)
            tasks.append(asyncio.create_task(call(name, priority)))
        await asyncio.sleep(0.05)
        async with client.post(url, json=payload, headers={"x-sluicegate-priority": "high"}) as refused:
            refused_status, retry_after = refused.status, refused.headers.get("retry-after")
        statuses = await asyncio.gather(*tasks)
    assert refused_status == 429 and retry_after
    assert statuses == [200] * 4
    assert done == ["first", "high", "normal", "low"]


# ------------------------------------------------------------------------ shared state


def test_ejection_is_shared_through_redis(
    tmp_path: Path, redis_url: str, fake_down: FakeOpenAI, fake_b: FakeOpenAI
) -> None:
    """One gateway ejects a failing deployment; a second gateway sharing Redis stops calling it too."""
    config = (
        f"master_key: {MASTER_KEY}\nredis_url: {redis_url}\n"
        "router: {retries: 1, sync_interval_s: 0.2}\nmodels:\n"
        + entry("shared", fake_down)
        + entry("shared", fake_b)
    )
    with run_gateway(tmp_path, config) as first, run_gateway(tmp_path, config) as second:
        for _ in range(6):
            assert chat(first, "shared").status_code == 200
        assert len(fake_down.requests) == 5  # ejected after five consecutive failures
        time.sleep(0.6)  # a few sync intervals
        fake_down.reset()
        for _ in range(10):
            assert chat(second, "shared").status_code == 200
        assert len(fake_down.requests) == 0
