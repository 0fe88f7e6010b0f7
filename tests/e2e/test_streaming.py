"""Streams: failures before the first byte are plain HTTP errors; after it, one in-band error event
and no `[DONE]`; a client that leaves cancels the upstream call."""

from __future__ import annotations

import socket
import time

import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess
from tests.fakes import CutStream, Error, FakeAnthropic, FakeOpenAI, Reply, SlowFirstToken

USER = [{"role": "user", "content": "tell me a story"}]


def raw_stream(gateway: GatewayProcess, model: str) -> tuple[int, list[bytes]]:
    """Send a streamed call over a plain socket and return the status and every SSE data payload."""
    body = orjson.dumps({"model": model, "messages": USER, "stream": True})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    # De-chunk the HTTP/1.1 body.
    body_bytes = b""
    while payload:
        size_line, _, rest = payload.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body_bytes += rest[:size]
        payload = rest[size + 2 :]
    events = [line[6:] for line in body_bytes.split(b"\n") if line.startswith(b"data: ")]
    return status, events


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_upstream_cut_mid_stream_gives_in_band_error(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """A provider that drops the connection mid-stream yields content, then one error event, no [DONE]."""
    fake = fake_openai if model == "gpt-fake" else fake_anthropic
    fake.enqueue(CutStream(after_events=4, then=Reply("one two three four five six seven eight")))
    status, events = raw_stream(gateway, model)
    assert status == 200
    assert b"[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["code"] in ("upstream_connect_error", "upstream_bad_response")
    texts = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert any(texts)


def test_openai_sdk_raises_on_in_band_error(client: openai.OpenAI) -> None:
    """The SDK raises APIError while iterating a stream that the mock cuts after two tokens."""
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="demo-cut", messages=USER, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "one two "


def test_stalled_first_token_is_504_before_any_byte(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """No first token within ttft_timeout_s: a plain 504 (the stream never started)."""
    fake_openai.enqueue(SlowFirstToken(4.0))
    began = time.perf_counter()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-fake", messages=USER, stream=True)
    assert info.value.status_code == 504
    assert time.perf_counter() - began < 3.5


def test_error_before_stream_starts_is_plain_http_error(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """A provider error on a streamed call arrives as an HTTP status, not as a broken stream."""
    fake_openai.enqueue(Error(429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-fake", messages=USER, stream=True)


def test_streamed_text_matches_non_streamed(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Streaming and non-streaming give the same text for the same reply."""
    text = "A long time ago, in a galaxy far, far away."
    fake_openai.enqueue(Reply(text), Reply(text))
    full = client.chat.completions.create(model="gpt-fake", messages=USER).choices[0].message.content
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-fake", messages=USER, stream=True)
        if c.choices
    )
    assert full == streamed == text


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_client_disconnect_cancels_upstream_at_once(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """When the client hangs up mid-call, the gateway closes its upstream connection within 100 ms."""
    fake = fake_openai if model == "gpt-fake" else fake_anthropic
    fake.enqueue(SlowFirstToken(5.0))
    body = orjson.dumps({"model": model, "messages": USER, "stream": True})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        fake.wait_for_requests(1)
        time.sleep(0.2)
        closed_at = time.monotonic()
    deadline = time.monotonic() + 3
    while not fake.client_gone_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.client_gone_at, "the gateway kept the upstream call open after its client left"
    assert fake.client_gone_at[0] - closed_at < 0.1
