"""The OpenAI-shaped adapters forward with minimal changes and read usage and errors of every vendor."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.config.schema import ModelEntry
from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.openai import OpenAIAdapter
from sluicegate.providers.openai_compatible import OpenAICompatibleAdapter
from sluicegate.types import ChatRequest, UpstreamReply
from sluicegate.upstream.sse import SSEDecoder

from ._helpers import feed_stream

USER = [{"role": "user", "content": "hi"}]


def openai(**fields: Any) -> OpenAIAdapter:
    return OpenAIAdapter(
        ModelEntry(name="gpt", provider="openai", model="gpt-4o-mini", api_key="sk-x", **fields)
    )


def compat(preset: str | None = None, **fields: Any) -> OpenAICompatibleAdapter:
    fields.setdefault("api_base", None if preset else "http://127.0.0.1:9/v1")
    return OpenAICompatibleAdapter(
        ModelEntry(name="local", provider="openai-compatible", model="m", preset=preset, **fields)
    )


def run_stream(
    adapter: OpenAIAdapter | OpenAICompatibleAdapter, request: ChatRequest, raw: bytes
) -> tuple[Any, list[bytes]]:
    translator = adapter.stream_translator(request)
    return translator, feed_stream(translator, SSEDecoder(), raw, finish=True)


def test_request_replaces_model_and_keeps_everything_else() -> None:
    """The provider's model id replaces the public name; no other key is added or nulled."""
    body = {"model": "gpt", "messages": USER, "temperature": 0.2, "tools": [], "custom_vendor_key": 1}
    upstream = openai().build_request(ChatRequest(body=body, model="gpt"))
    sent = orjson.loads(upstream.body)
    assert sent == {**body, "model": "gpt-4o-mini"}
    assert upstream.url == "https://api.openai.com/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer sk-x"
    assert body["model"] == "gpt"  # the caller's body is not mutated (a retry reuses it)


def test_streams_ask_for_usage_upstream() -> None:
    """A streamed call always asks the provider for usage so it can be priced."""
    body = {"model": "gpt", "messages": USER, "stream": True}
    sent = orjson.loads(openai().build_request(ChatRequest(body=body, model="gpt", stream=True)).body)
    assert sent["stream_options"] == {"include_usage": True}


def test_custom_headers_and_api_base_apply() -> None:
    """`api_base` and `headers` from the config shape the upstream request."""
    upstream = openai(api_base="http://proxy.local/v1/", headers={"OpenAI-Project": "p1"}).build_request(
        ChatRequest(body={"model": "gpt", "messages": USER}, model="gpt")
    )
    assert upstream.url == "http://proxy.local/v1/chat/completions"
    assert upstream.headers["OpenAI-Project"] == "p1"


CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
)
USAGE = (
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
)


def test_stream_passes_chunks_through_and_hides_injected_usage() -> None:
    """Chunks are forwarded byte for byte; the usage chunk the caller did not ask for is dropped but read."""
    request = ChatRequest(body={}, model="gpt", stream=True, include_usage=False)
    translator, frames = run_stream(openai(), request, CHUNK + USAGE + b"data: [DONE]\n\n")
    assert frames == [CHUNK, b"data: [DONE]\n\n"]
    assert translator.usage.prompt_tokens == 3 and translator.usage.completion_tokens == 1


def test_stream_keeps_usage_chunk_when_caller_asked() -> None:
    """With `include_usage` from the caller, the usage chunk reaches them."""
    request = ChatRequest(body={}, model="gpt", stream=True, include_usage=True)
    _, frames = run_stream(openai(), request, CHUNK + USAGE + b"data: [DONE]\n\n")
    assert frames == [CHUNK, USAGE, b"data: [DONE]\n\n"]


def test_stream_without_done_is_an_error() -> None:
    """A stream that ends without `[DONE]` was cut: finish() raises so the client sees an error event."""
    with pytest.raises(UpstreamProtocolError):
        run_stream(openai(), ChatRequest(body={}, model="gpt", stream=True), CHUNK)


def test_in_band_error_event_raises_with_its_message() -> None:
    """An OpenRouter-style `data: {"error":...}` after HTTP 200 raises with the provider's message."""
    raw = CHUNK + b'data: {"error":{"code":502,"message":"model down"}}\n\n'
    with pytest.raises(UpstreamStatusError, match="model down"):
        run_stream(compat("openrouter"), ChatRequest(body={}, model="m", stream=True), raw)


def test_groq_usage_in_x_groq_is_read() -> None:
    """Groq's usage inside `x_groq` on the last chunk is picked up."""
    last = b'data: {"id":"c","choices":[],"x_groq":{"usage":{"prompt_tokens":5,"completion_tokens":2}}}\n\n'
    translator, _ = run_stream(
        compat("groq"), ChatRequest(body={}, model="m", stream=True), last + b"data: [DONE]\n\n"
    )
    assert translator.usage.prompt_tokens == 5


@pytest.mark.parametrize(
    ("status", "body", "message", "code"),
    [
        (
            400,
            {
                "error": {
                    "message": "bad temp",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": None,
                }
            },
            "bad temp",
            None,
        ),
        (
            400,
            {"object": "error", "message": "old vllm", "type": "BadRequestError", "param": None, "code": 400},
            "old vllm",
            "400",
        ),
        (402, {"error": {"code": 402, "message": "out of credits"}}, "out of credits", "402"),
        (500, b"<html>Internal Server Error</html>", "<html>Internal Server Error</html>", None),
        (503, b"", "the provider returned HTTP 503", None),
    ],
)
def test_error_bodies_of_every_vendor_keep_their_message(
    status: int, body: Any, message: str, code: str | None
) -> None:
    """OpenAI, old vLLM, OpenRouter and non-JSON error bodies all yield the provider's message."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    error = openai().map_error(UpstreamReply(status, {}, raw))
    assert isinstance(error, UpstreamStatusError)
    assert error.message == message and error.code == code and error.upstream_status == status


def test_429_keeps_retry_after() -> None:
    """A provider 429 keeps its `retry-after` so the client backs off as long as it was told."""
    error = openai().map_error(UpstreamReply(429, {"retry-after": "7"}, b'{"error":{"message":"slow"}}'))
    assert error.http_status == 429 and error.headers == {"retry-after": "7"}


def test_deepseek_leading_blank_lines_are_tolerated() -> None:
    """A reply preceded by blank lines (DeepSeek under load) parses and is sent on as clean JSON."""
    reply = (
        b'\n\n{"id":"x","object":"chat.completion","choices":[{"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1,"completion_tokens":2}}'
    )
    response = compat("deepseek").parse_response(
        ChatRequest(body={}, model="m"), UpstreamReply(200, {}, reply)
    )
    assert response.content.startswith(b"{") and response.usage.completion_tokens == 2


def test_preset_supplies_base_url() -> None:
    """A preset fills in the vendor's base URL."""
    upstream = compat("groq", api_key="k").build_request(
        ChatRequest(body={"model": "m", "messages": USER}, model="m")
    )
    assert upstream.url == "https://api.groq.com/openai/v1/chat/completions"


def test_unsupported_parameter_is_a_clear_400_or_dropped() -> None:
    """A parameter the server rejects is a 400 naming it, or silently dropped with drop_params."""
    body = {"model": "m", "messages": USER, "logit_bias": {"1": 2}}
    with pytest.raises(InvalidRequestError) as info:
        compat("groq", api_key="k").build_request(ChatRequest(body=body, model="m"))
    assert info.value.param == "logit_bias"
    sent = orjson.loads(
        compat("groq", api_key="k", drop_params=True).build_request(ChatRequest(body=body, model="m")).body
    )
    assert "logit_bias" not in sent
