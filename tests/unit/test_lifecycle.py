"""Drain and shutdown inside one worker, driven through the Gateway's ASGI interface (no process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.server.app import Gateway
from sluicegate.server.lifecycle import Lifecycle, hook_reserve_s

MASTER = "sk-unit-master-key-0123456789"
CONFIG = {
    "master_key": MASTER,
    "models": [
        {"name": "demo", "provider": "mock"},
        # ~10 s of tokens: still streaming whenever a test cuts it.
        {"name": "long", "provider": "mock", "mock": {"reply": " ".join(["tok"] * 50), "tokens_per_s": 5}},
        {"name": "stall", "provider": "mock", "mock": {"ttft_ms": 10000}},
    ],
}


class Exchange:
    """One ASGI request: what the app sent back, and the task running it."""

    def __init__(self, gateway: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.first_body = asyncio.Event()
        raw = orjson.dumps(body) if body is not None else b""
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": b"",
            "client": ("127.0.0.1", 5000),
            "headers": [
                (b"authorization", f"Bearer {MASTER}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.Event().wait()  # the client never hangs up
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            self.messages.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                self.first_body.set()

        self.task = asyncio.ensure_future(gateway(scope, receive, send))

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def gateway(tmp_path: Path) -> Gateway:
    # Its own database file: the default would be ./sluicegate.db in the working directory.
    return Gateway(parse_config({**CONFIG, "database_url": f"sqlite:///{tmp_path / 'sg.db'}"}))


def chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


async def finished(gateway: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> Exchange:
    exchange = Exchange(gateway, method, path, body)
    await asyncio.wait_for(exchange.task, 5)
    return exchange


async def test_ready_turns_503_as_soon_as_draining_starts(tmp_path: Path) -> None:
    """`/health/ready` answers 200, then 503 `draining` with `connection: close` once drain begins."""
    gw = gateway(tmp_path)
    assert (await finished(gw, "GET", "/health/ready")).status == 200
    gw.lifecycle.begin_drain(30)
    ready = await finished(gw, "GET", "/health/ready")
    assert ready.status == 503
    assert orjson.loads(ready.body) == {"status": "draining"}
    assert ready.headers[b"connection"] == b"close"


async def test_liveness_stays_200_while_draining(tmp_path: Path) -> None:
    """`/health/live` keeps answering 200 during the drain: the process is alive, just not ready."""
    gw = gateway(tmp_path)
    gw.lifecycle.begin_drain(30)
    assert (await finished(gw, "GET", "/health/live")).status == 200


async def test_a_new_call_while_draining_gets_503_and_connection_close(tmp_path: Path) -> None:
    """A call arriving during the drain is refused with 503 `shutting_down` and the connection closes."""
    gw = gateway(tmp_path)
    gw.lifecycle.begin_drain(30)
    refused = await finished(gw, "POST", "/v1/chat/completions", chat("demo"))
    assert refused.status == 503
    assert refused.headers[b"connection"] == b"close"
    assert orjson.loads(refused.body)["error"]["code"] == "shutting_down"


async def test_refusal_on_the_messages_route_is_anthropic_shaped(tmp_path: Path) -> None:
    """`/v1/messages` callers get the 503 as an Anthropic error body, which their SDK parses."""
    gw = gateway(tmp_path)
    gw.lifecycle.begin_drain(30)
    body = {"model": "demo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    refused = await finished(gw, "POST", "/v1/messages", body)
    assert refused.status == 503
    assert orjson.loads(refused.body)["type"] == "error"


async def test_calls_started_before_the_drain_complete_normally(tmp_path: Path) -> None:
    """Draining refuses only new calls: a non-streamed call already running returns its 200."""
    gw = gateway(tmp_path)
    exchange = Exchange(gw, "POST", "/v1/chat/completions", chat("demo"))
    await asyncio.sleep(0)  # the call is past the drain check
    gw.lifecycle.begin_drain(30)
    await asyncio.wait_for(exchange.task, 5)
    assert exchange.status == 200
    assert orjson.loads(exchange.body)["choices"][0]["message"]["content"] == "echo: hi"


async def cut(gw: Gateway, exchange: Exchange) -> None:
    """What server/worker.py does at the drain deadline."""
    gw.lifecycle.cutting = True
    exchange.task.cancel()
    await asyncio.wait_for(exchange.task, 5)  # finishes normally: the cut is not an error for uvicorn


async def test_a_cut_stream_ends_with_the_openai_in_band_error_event(tmp_path: Path) -> None:
    """A stream still running at the drain deadline ends with one `data: {"error"}` event, no [DONE]."""
    gw = gateway(tmp_path)
    exchange = Exchange(gw, "POST", "/v1/chat/completions", chat("long", stream=True))
    await asyncio.wait_for(exchange.first_body.wait(), 5)
    await cut(gw, exchange)
    assert exchange.status == 200
    last = exchange.messages[-1]
    assert last["more_body"] is False
    event = last["body"]
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert orjson.loads(event[6:])["error"]["code"] == "shutting_down"
    assert b"[DONE]" not in exchange.body


async def test_a_cut_messages_stream_ends_with_an_anthropic_error_event(tmp_path: Path) -> None:
    """On `/v1/messages` the cut stream ends with `event: error` as Anthropic streams do."""
    gw = gateway(tmp_path)
    body = {
        "model": "long",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    exchange = Exchange(gw, "POST", "/v1/messages", body)
    await asyncio.wait_for(exchange.first_body.wait(), 5)
    await cut(gw, exchange)
    event = exchange.messages[-1]["body"]
    assert event.startswith(b"event: error\ndata: ")
    assert orjson.loads(event.split(b"data: ", 1)[1])["type"] == "error"
    assert b"message_stop" not in exchange.body


async def test_a_call_cut_before_its_response_started_gets_503(tmp_path: Path) -> None:
    """A call still waiting for its provider at the deadline is answered 503 rather than dropped."""
    gw = gateway(tmp_path)
    exchange = Exchange(gw, "POST", "/v1/chat/completions", chat("stall", stream=True))
    await asyncio.sleep(0.05)
    await cut(gw, exchange)
    assert exchange.status == 503
    assert orjson.loads(exchange.body)["error"]["code"] == "shutting_down"


async def test_a_cancellation_that_is_not_the_drain_cut_still_cancels(tmp_path: Path) -> None:
    """Outside the drain cut a cancelled call stays cancelled (uvicorn's own semantics are kept)."""
    gw = gateway(tmp_path)
    exchange = Exchange(gw, "POST", "/v1/chat/completions", chat("long", stream=True))
    await asyncio.wait_for(exchange.first_body.wait(), 5)
    exchange.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await exchange.task


async def test_shutdown_hooks_run_in_order_and_one_failure_does_not_stop_the_rest() -> None:
    """Hooks run in registration order; one that raises or overruns is logged and the next still runs."""
    lifecycle = Lifecycle()
    ran: list[str] = []

    async def failing() -> None:
        ran.append("failing")
        raise RuntimeError("boom")

    async def slow() -> None:
        ran.append("slow")
        await asyncio.sleep(10)

    async def flush() -> None:
        ran.append("flush")

    for hook in (failing, slow, flush):
        lifecycle.on_shutdown(hook)
    lifecycle.begin_drain(0.3)
    await asyncio.wait_for(lifecycle.run_hooks(), 3)
    assert ran == ["failing", "slow", "flush"]


async def test_lifespan_shutdown_runs_hooks_before_it_completes(tmp_path: Path) -> None:
    """The ledger-flush hook runs during lifespan shutdown, before uvicorn is told shutdown completed."""
    gw = gateway(tmp_path)
    events: list[str] = []

    async def hook() -> None:
        events.append("hook")

    gw.on_shutdown(hook)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    await asyncio.wait_for(gw({"type": "lifespan"}, receive, send), 5)
    assert events == ["lifespan.startup.complete", "hook", "lifespan.shutdown.complete"]


def test_the_cut_leaves_time_for_the_hooks() -> None:
    """In-flight calls are cut a fifth of the drain timeout early, at most 2 s, so the hooks still fit."""
    assert hook_reserve_s(30) == 2.0
    assert hook_reserve_s(3) == pytest.approx(0.6)
