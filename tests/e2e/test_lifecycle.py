"""SIGTERM under load on a real gateway process: in-flight calls finish, new ones are turned away,
streams past the drain timeout end with an in-band error, and the process exits 0 — with one worker
and with `--workers 2`."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, run_gateway

# `slow`: ~1 s per stream (first token after 0.3 s, then 10 tokens/s); `long`: ~10 s.
CONFIG = f"""
master_key: {MASTER_KEY}
server:
  drain_timeout_s: {{drain}}
models:
  - name: slow
    provider: mock
    mock: {{{{reply: "one two three four five six seven eight", ttft_ms: 300, tokens_per_s: 10}}}}
  - name: long
    provider: mock
    mock: {{{{reply: "{" ".join(["tok"] * 50)}", tokens_per_s: 5}}}}
"""
SLOW_REPLY = "one two three four five six seven eight"


def config(drain_s: float) -> str:
    return CONFIG.format(drain=drain_s)


@dataclass
class Stream:
    """One streamed call on its own connection, read in a thread."""

    port: int
    model: str
    path: str = "/v1/chat/completions"
    started: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: BaseException | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        if self.path == "/v1/messages":
            payload = {"model": self.model, "max_tokens": 200, "stream": True}
        else:
            payload = {"model": self.model, "stream": True}
        payload["messages"] = [{"role": "user", "content": "hi"}]
        try:
            conn.request(
                "POST",
                self.path,
                body=orjson.dumps(payload),
                headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
            )
            response = conn.getresponse()
            self.status = response.status
            self.headers = {k.lower(): v for k, v in response.getheaders()}
            parts = [response.read1(65536)]  # the first event: the call is now in flight
            self.started.set()
            while chunk := response.read1(65536):
                parts.append(chunk)
            self.body = b"".join(parts)
        except BaseException as exc:  # reported by the test, not swallowed
            self.error = exc
            self.started.set()
        finally:
            conn.close()

    def text(self) -> str:
        pieces = []
        for line in self.body.split(b"\n"):
            if line.startswith(b"data: {"):
                chunk = orjson.loads(line[6:])
                for choice in chunk.get("choices", []):
                    pieces.append(choice.get("delta", {}).get("content") or "")
        return "".join(pieces)


class OneReader:
    """Hands http.client one buffered reader for several pipelined responses, and keeps it open."""

    def __init__(self, reader: object) -> None:
        self._reader = reader

    def makefile(self, *args: object, **kwargs: object) -> OneReader:
        return self

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)

    def close(self) -> None:
        return  # HTTPResponse closes its file after each response; the next one needs it


def start_streams(
    gw: GatewayProcess, count: int, model: str = "slow"
) -> tuple[list[Stream], list[threading.Thread]]:
    port = int(gw.url.rsplit(":", 1)[1])
    streams = [Stream(port, model) for _ in range(count)]
    threads = [threading.Thread(target=s.run, daemon=True) for s in streams]
    for thread in threads:
        thread.start()
    for stream in streams:
        assert stream.started.wait(10), "a stream never started"
        assert stream.error is None, stream.error
    return streams, threads


def refused(gw: GatewayProcess, within_s: float = 1.0) -> bool:
    """True once a new TCP connection to the gateway is refused."""
    port = int(gw.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def wait_exit(gw: GatewayProcess, timeout_s: float) -> int:
    return gw.process.wait(timeout=timeout_s)


def assert_completed(streams: list[Stream]) -> None:
    for stream in streams:
        assert stream.error is None, stream.error
        assert stream.status == 200
        assert stream.body.rstrip().endswith(b"data: [DONE]"), stream.body[-200:]
        assert stream.text() == SLOW_REPLY


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_in_flight_streams_finish_refuses_new_connections_and_exits_0(
    tmp_path: Path, workers: int, request: pytest.FixtureRequest
) -> None:
    """Under SIGTERM every in-flight stream completes, new connections are refused at once, and the
    process exits 0 well within the drain timeout (also with `--workers 2`, signalling only the parent)."""
    extra = ("--workers", "2") if workers == 2 else ()
    text = config(drain_s=10)
    if workers == 2:  # several workers need Redis for their limits
        text += f"redis_url: {request.getfixturevalue('redis_url')}\n"
    with run_gateway(tmp_path, text, extra_args=extra) as gw:
        streams, threads = start_streams(gw, 12)
        signalled = time.monotonic()
        os.kill(gw.process.pid, signal.SIGTERM)  # the parent only, as an orchestrator does
        assert refused(gw), "new connections were still accepted during the drain"
        still_streaming = sum(t.is_alive() for t in threads)
        for thread in threads:
            thread.join(15)
        status = wait_exit(gw, 15)
        elapsed = time.monotonic() - signalled
    assert still_streaming > 0  # the refusal came while calls were in flight
    assert_completed(streams)
    assert status == 0, gw.log()
    assert elapsed < 10


def test_a_stream_longer_than_the_drain_timeout_ends_with_an_in_band_error(tmp_path: Path) -> None:
    """A stream still running at the drain deadline is cut with the route's error event (OpenAI
    `data: {"error"}`, Anthropic `event: error`), never silently, and the process still exits 0 in time."""
    drain_s = 2.0
    with run_gateway(tmp_path, config(drain_s=drain_s)) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        openai_stream = Stream(port, "long")
        anthropic_stream = Stream(port, "long", path="/v1/messages")
        threads = [threading.Thread(target=s.run, daemon=True) for s in (openai_stream, anthropic_stream)]
        for thread in threads:
            thread.start()
        assert openai_stream.started.wait(10) and anthropic_stream.started.wait(10)
        signalled = time.monotonic()
        os.kill(gw.process.pid, signal.SIGTERM)
        for thread in threads:
            thread.join(10)
        status = wait_exit(gw, 10)
        elapsed = time.monotonic() - signalled
    assert openai_stream.error is None and anthropic_stream.error is None
    last = openai_stream.body.rstrip().rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"data: {")
    assert orjson.loads(last[6:])["error"]["code"] == "shutting_down"
    assert b"[DONE]" not in openai_stream.body
    tail = anthropic_stream.body.rstrip().rsplit(b"\n\n", 1)[-1]
    assert tail.startswith(b"event: error\ndata: ")
    assert b"message_stop" not in anthropic_stream.body
    assert status == 0, gw.log()
    assert drain_s - 1.0 < elapsed < drain_s + 1.0


def test_keep_alive_connection_closes_after_its_request_and_a_pipelined_request_gets_503(
    tmp_path: Path,
) -> None:
    """A connection busy at SIGTERM finishes its response; a request queued behind it on the same
    connection gets 503 `shutting_down` with `connection: close`; then the server closes the connection."""
    with run_gateway(tmp_path, config(drain_s=10)) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = orjson.dumps({"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]})
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        second = f"GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n\r\n".encode()
        sock.sendall(head + body + second)  # HTTP/1.1 pipelining: the second waits for the first
        reader = sock.makefile("rb")
        first = http.client.HTTPResponse(OneReader(reader))  # type: ignore[arg-type]
        first.begin()
        assert first.status == 200
        os.kill(gw.process.pid, signal.SIGTERM)
        streamed = first.read()
        queued = http.client.HTTPResponse(OneReader(reader))  # type: ignore[arg-type]
        queued.begin()
        refused_body = queued.read()
        rest = reader.read()
        sock.close()
        status = wait_exit(gw, 15)
    assert streamed.rstrip().endswith(b"data: [DONE]")
    assert queued.status == 503
    assert queued.getheader("connection") == "close"
    assert orjson.loads(refused_body)["error"]["code"] == "shutting_down"
    assert rest == b""  # closed by the server
    assert status == 0


def test_sigterm_on_an_idle_gateway_exits_0_at_once(tmp_path: Path) -> None:
    """With nothing in flight the drain is immediate: exit status 0 within a second."""
    with run_gateway(tmp_path, config(drain_s=30)) as gw:
        signalled = time.monotonic()
        os.kill(gw.process.pid, signal.SIGTERM)
        status = wait_exit(gw, 10)
        elapsed = time.monotonic() - signalled
    assert status == 0
    assert elapsed < 1.5
