"""The mock provider is deterministic: replies from input, exact failure rates, timing knobs."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from sluicegate.config.schema import MockOptions
from sluicegate.errors import UpstreamTimeoutError
from sluicegate.providers.mock import MockTransport
from sluicegate.types import UpstreamRequest
from sluicegate.upstream.sse import SSEDecoder


def request(body: dict[str, object]) -> UpstreamRequest:
    return UpstreamRequest("POST", "mock://x", {}, orjson.dumps(body))


BODY = {"model": "demo", "messages": [{"role": "user", "content": "ping pong"}]}


async def open_reply(transport: MockTransport, body: dict[str, object]) -> tuple[int, bytes]:
    stream = await transport.open(request(body), timeout_s=5, connect_timeout_s=5, stream=False)
    return stream.status, await stream.read()


async def test_echoes_last_user_message() -> None:
    """Without `reply`, the answer is `echo: <last user message>` with usage."""
    status, raw = await open_reply(MockTransport(MockOptions()), BODY)
    body = orjson.loads(raw)
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "echo: ping pong"
    assert body["usage"]["completion_tokens"] == 3


async def test_fail_rate_is_exact_and_evenly_spread() -> None:
    """`fail_rate: 0.25` fails exactly one call in four, with the configured status."""
    transport = MockTransport(MockOptions(fail_rate=0.25, fail_status=503))
    statuses = [(await open_reply(transport, BODY))[0] for _ in range(8)]
    assert statuses == [200, 200, 200, 503, 200, 200, 200, 503]


async def test_429_failures_carry_retry_after() -> None:
    """An injected 429 says when to retry, like a real provider."""
    stream = await MockTransport(MockOptions(fail_rate=1, fail_status=429)).open(
        request(BODY), timeout_s=5, connect_timeout_s=5, stream=False
    )
    assert stream.status == 429 and stream.headers["retry-after"] == "1"


async def test_timeout_rate_never_answers() -> None:
    """A call chosen by `timeout_rate` hangs until the caller gives up."""
    transport = MockTransport(MockOptions(timeout_rate=1))
    try:
        async with asyncio.timeout(0.2):
            await transport.open(request(BODY), timeout_s=5, connect_timeout_s=5, stream=False)
        raise AssertionError("the mock answered")
    except TimeoutError:
        pass


async def test_hang_ends_with_the_transport_deadline() -> None:
    """A hanging mock call raises the gateway's timeout error once `timeout_s` has passed."""
    began = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError):
        await MockTransport(MockOptions(timeout_rate=1)).open(
            request(BODY), timeout_s=0.1, connect_timeout_s=5, stream=False
        )
    assert 0.1 <= time.perf_counter() - began < 1


async def test_stream_cut_after_tokens_has_no_done() -> None:
    """`cut_after_tokens` ends the stream early, without a finish chunk or [DONE]."""
    transport = MockTransport(MockOptions(reply="a b c d e", cut_after_tokens=2))
    stream = await transport.open(
        request({**BODY, "stream": True}), timeout_s=5, connect_timeout_s=5, stream=True
    )
    decoder = SSEDecoder()
    events = [e for chunk in [c async for c in stream.iter_chunks()] for e in decoder.feed(chunk)]
    contents = [orjson.loads(e.data)["choices"][0]["delta"].get("content") for e in events]
    assert contents == ["", "a ", "b "]
    assert all(e.data != b"[DONE]" for e in events)


async def test_ttft_and_tokens_per_second_shape_the_stream() -> None:
    """The first token waits `ttft_ms`; later tokens arrive at `tokens_per_s`."""
    transport = MockTransport(MockOptions(reply="a b c d", ttft_ms=100, tokens_per_s=20))
    began = time.perf_counter()
    stream = await transport.open(
        request({**BODY, "stream": True}), timeout_s=5, connect_timeout_s=5, stream=True
    )
    arrivals = [time.perf_counter() - began async for _ in stream.iter_chunks()]
    assert arrivals[0] >= 0.1
    assert arrivals[-1] >= 0.1 + 3 * 0.05 - 0.01


async def test_max_tokens_truncates_with_length() -> None:
    """A `max_tokens` below the reply length truncates it and reports finish_reason length."""
    _, raw = await open_reply(
        MockTransport(MockOptions(reply="one two three four")), {**BODY, "max_tokens": 2}
    )
    choice = orjson.loads(raw)["choices"][0]
    assert choice["message"]["content"] == "one two " and choice["finish_reason"] == "length"


async def test_forced_tool_choice_returns_a_tool_call() -> None:
    """With `tool_choice: required` the mock calls the first tool."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    _, raw = await open_reply(
        MockTransport(MockOptions()), {**BODY, "tools": tools, "tool_choice": "required"}
    )
    choice = orjson.loads(raw)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "lookup"
