"""How a model route presents its results: the OpenAI dialect as is, or translated for another API.

Every adapter produces OpenAI Chat Completions (a body, or SSE frames); an `Egress` turns that
into what the route's callers expect. The OpenAI egress is the identity and costs one join per
stream read. `/v1/messages` and `/v1/responses` plug in their own egress, so retries, limits,
pricing and logging run once in the shared pipeline whatever the surface.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from ..errors import GatewayError, render_openai
from ..types import ChatRequest, ChatResponse


class StreamEncoder(Protocol):
    """Per-stream state of an egress: OpenAI SSE frames in, the route's wire bytes out."""

    def encode(self, frames: list[bytes]) -> bytes: ...

    def error(self, error: GatewayError) -> bytes:
        """The in-band event that ends a stream which failed after its first byte."""
        ...


class Egress(Protocol):
    def render_error(self, error: GatewayError) -> bytes: ...

    def complete(self, request: ChatRequest, response: ChatResponse) -> bytes: ...

    def stream(self, request: ChatRequest) -> StreamEncoder: ...


class _OpenAIStream:
    __slots__ = ()

    def encode(self, frames: list[bytes]) -> bytes:
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def error(self, error: GatewayError) -> bytes:
        # SPEC §6: one `data: {"error": ...}` event and no `[DONE]`.
        return b"data: " + orjson.dumps(error.to_openai()) + b"\n\n"


class OpenAIEgress:
    """Chat Completions as the adapters produce it: bytes pass through untouched."""

    __slots__ = ()
    _stream = _OpenAIStream()

    def render_error(self, error: GatewayError) -> bytes:
        return render_openai(error)

    def complete(self, request: ChatRequest, response: ChatResponse) -> bytes:
        return response.content

    def stream(self, request: ChatRequest) -> StreamEncoder:
        return self._stream


OPENAI = OpenAIEgress()
