"""The built-in `mock` provider: a deterministic in-process OpenAI server (SPEC §5).

The reply is derived from the input (`echo: <last user message>`, or the configured `reply`);
it can simulate latency, time to first token, tokens per second, and injected failures: an
error status on a share of calls, calls that never answer, and streams cut after N tokens.
It plugs into the gateway as a *transport*, so a mock call runs through exactly the same
pipeline, translation and streaming code as a real OpenAI call. Failure injection is
deterministic: with `fail_rate: 0.25` exactly every fourth call fails.

It also serves `/embeddings` in OpenAI's wire format (floats or base64): each vector is a hashed
bag of the input's words, L2-normalised, so equal inputs get equal vectors and inputs sharing
words point in similar directions, which makes it usable for testing retrieval code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..config.schema import MockOptions
from ..errors import UpstreamTimeoutError
from ..types import UpstreamRequest
from ._openai_compat import OpenAICompatibleBase

_PIECE = re.compile(r"\S+\s*|\s+")
_WORD = re.compile(r"\w+")
# text-embedding-3-small's size, so code written against OpenAI sees familiar vectors.
DEFAULT_EMBEDDING_DIMENSIONS = 1536
_JSON_HEADERS = {"content-type": "application/json"}
_SSE_HEADERS = {"content-type": "text/event-stream"}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A deterministic stand-in for a tokenizer: ~4 characters a token, 3 tokens per message."""
    messages = body.get("messages") or []
    total = 0
    for message in messages:
        if isinstance(message, dict):
            total += 3 + math.ceil(len(_text_of(message.get("content"))) / 4)
    return max(total, 1)


def reply_text(body: dict[str, Any], options: MockOptions) -> str:
    if options.reply is not None:
        return options.reply
    last_user = ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = _text_of(message.get("content"))
            break
    return f"echo: {last_user}"


def mock_embedding(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic unit vector for one input: each word (or token id) adds ±1 at 4 hashed positions."""
    if isinstance(item, str):
        features = [word.lower() for word in _WORD.findall(item)] or [item]
    else:
        features = [f"#{token}" for token in item]
    vector = [0.0] * dimensions
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=16).digest()
        for (n,) in struct.iter_unpack("<I", digest):
            vector[(n & 0x7FFFFFFF) % dimensions] += -1.0 if n >> 31 else 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # every feature cancelled out (possible with tiny `dimensions`)
        vector[0], norm = 1.0, 1.0
    # Rounded to float32, as OpenAI's vectors are, so the float and base64 forms decode identically.
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in vector))
    return list(struct.unpack(f"<{dimensions}f", packed))


def embeddings_reply(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `/v1/embeddings` reply for a (gateway-validated) request body."""
    raw = body["input"]
    inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
    dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(inputs):
        vector = mock_embedding(item, dimensions)
        tokens += max(1, math.ceil(len(item) / 4)) if isinstance(item, str) else len(item)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or "mock",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The tool the caller forces (`required` = the first one), else None: then the mock answers in text."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    if choice == "required":
        first = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
        name = first.get("name")
        return name if isinstance(name, str) else None
    return None


class MockBehaviour:
    """Decides each call's fate; shared by the in-process transport and `sluicegate bench`'s upstream."""

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self._calls = 0

    def _hits(self, rate: float, n: int) -> bool:
        # Exactly `rate` of calls, evenly spread and reproducible (no RNG): call n hits when
        # floor(n * rate) steps up.
        return rate > 0 and math.floor(n * rate) > math.floor((n - 1) * rate)

    def next_fate(self) -> str:
        self._calls += 1
        if self._hits(self.options.timeout_rate, self._calls):
            return "hang"
        if self._hits(self.options.fail_rate, self._calls):
            return "fail"
        return "ok"

    def error_body(self) -> tuple[int, dict[str, str], bytes]:
        status = self.options.fail_status
        headers = dict(_JSON_HEADERS)
        if status == 429:
            headers["retry-after"] = "1"
        kind = (
            "rate_limit_error"
            if status == 429
            else ("server_error" if status >= 500 else "invalid_request_error")
        )
        body = {
            "error": {"message": f"mock failure (HTTP {status})", "type": kind, "param": None, "code": None}
        }
        return status, headers, orjson.dumps(body)

    def completion(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str], str]:
        """Skeleton response, the reply's pieces and the finish reason."""
        model = body.get("model") or "mock"
        tool = _forced_tool(body)
        pieces = [] if tool else _PIECE.findall(reply_text(body, self.options))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "tool_calls" if tool else "stop"
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces = pieces[:limit]
            finish = "length"
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool else "".join(pieces),
            "refusal": None,
        }
        if tool:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": tool, "arguments": "{}"},
                }
            ]
        prompt = estimate_prompt_tokens(body)
        completion = len(pieces) if not tool else 1
        response = {
            "id": f"chatcmpl-mock{uuid.uuid4().hex[:20]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
        return response, pieces, finish

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        response, pieces, finish = self.completion(body)
        options = self.options
        base = {
            "id": response["id"],
            "object": "chat.completion.chunk",
            "created": response["created"],
            "model": response["model"],
        }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def frame(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            chunk = {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        if options.ttft_ms > 0:
            await asyncio.sleep(options.ttft_ms / 1000)
        yield frame({"role": "assistant", "content": ""})
        delay = 1.0 / options.tokens_per_s if options.tokens_per_s > 0 else 0.0
        message = response["choices"][0]["message"]
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            yield frame({"tool_calls": [{"index": 0, **call}]})
        for sent, piece in enumerate(pieces):
            if options.cut_after_tokens is not None and sent >= options.cut_after_tokens:
                return  # the connection "drops": no finish chunk, no [DONE]
            if delay and sent:
                await asyncio.sleep(delay)
            yield frame({"content": piece})
        yield frame({}, finish)
        if include_usage:
            usage_chunk = {**base, "choices": [], "usage": response["usage"]}
            yield b"data: " + orjson.dumps(usage_chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"


class _MockStream:
    __slots__ = ("_body", "_chunks", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes = b"",
        chunks: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self._chunks = chunks

    async def read(self) -> bytes:
        if self._chunks is None:
            return self._body
        return b"".join([c async for c in self._chunks])

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            yield self._body
            return
        async for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        # Nothing to release: an abandoned reply generator holds no socket, and the event loop's
        # async-generator hooks finalise it when it is garbage-collected.
        return


class MockTransport:
    """In-process stand-in for an HTTP connection to an OpenAI server."""

    def __init__(self, options: MockOptions) -> None:
        self.behaviour = MockBehaviour(options)

    async def open(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float, stream: bool
    ) -> _MockStream:
        behaviour = self.behaviour
        fate = behaviour.next_fate()
        if fate == "hang":
            # Never answers; like a real connection, the transport's deadline ends the wait.
            await asyncio.sleep(timeout_s)
            raise UpstreamTimeoutError(f"the provider did not answer within {timeout_s:g} s")
        body = orjson.loads(request.body)
        if fate == "fail":
            status, headers, payload = behaviour.error_body()
            return _MockStream(status, headers, payload)
        if body.get("stream") and not request.url.endswith("/embeddings"):
            return _MockStream(200, _SSE_HEADERS, chunks=behaviour.stream(body))
        latency_s = behaviour.options.latency_ms / 1000
        if latency_s > timeout_s:
            await asyncio.sleep(timeout_s)
            raise UpstreamTimeoutError(f"the provider did not finish within {timeout_s:g} s")
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        if request.url.endswith("/embeddings"):
            return _MockStream(200, _JSON_HEADERS, orjson.dumps(embeddings_reply(body)))
        response, _, _ = behaviour.completion(body)
        return _MockStream(200, _JSON_HEADERS, orjson.dumps(response))


class MockAdapter(OpenAICompatibleBase):
    provider = "mock"
    default_api_base = "mock://sluicegate"
    # The mock is a chat model: `/v1/completions` reaches it translated to chat, like any chat-only provider.
    legacy_completions = False

    def __init__(self, entry: Any) -> None:
        super().__init__(entry)
        self.options = entry.mock or MockOptions()

    def make_transport(self) -> MockTransport:
        return MockTransport(self.options)
