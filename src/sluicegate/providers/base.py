"""The adapter interface: how one provider's wire format maps to the gateway's internal types.

An adapter is pure translation. It turns a `ChatRequest` into an `UpstreamRequest` (method, URL,
headers, body bytes), a complete reply into a `ChatResponse`, each upstream stream event into
zero or more OpenAI SSE frames (through a per-stream `StreamTranslator`), and an upstream error
(status, headers, body) into our exception tree. Network I/O lives in `upstream/`; the pipeline
joins the two. Adapters are built once per deployment at config load, so per-call work is only
the translation itself.

Hooks beyond the four required methods, each with a default that costs nothing:
- `stream_decoder()` frames the provider's stream into events (SSE by default; NDJSON for Ollama,
  the AWS event-stream for Bedrock), so every translator has the same `feed(event)` shape.
- `needs_signing` / `sign()` let the upstream step add credentials computed per attempt (SigV4,
  an OAuth token refreshed through the transport) after translation and before the send.
- `capabilities` declares what the deployment can do; `build_embeddings_request` /
  `parse_embeddings_response` serve `/v1/embeddings` where the provider has embeddings.

`refuse()` is every adapter's answer to a parameter its provider cannot honour: one 400 naming
the parameter and the provider, or a silent drop when the model entry sets `drop_params: true`.
The pure request and reply helpers the translating adapters share are in `_translate.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import orjson

from ..errors import GatewayError, InvalidRequestError, UpstreamProtocolError
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

DONE_FRAME = b"data: [DONE]\n\n"
_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def retry_hint_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's `retry-after` / `retry-after-ms`, lower-cased, to pass on to the client."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in _RETRY_HEADERS}


def sse_frame(payload: bytes) -> bytes:
    """One OpenAI-style SSE event around a single-line JSON payload."""
    return b"data: " + payload + b"\n\n"


def loads_lenient(data: bytes) -> Any:
    """Parse JSON from a provider, repairing invalid UTF-8 rather than failing the whole call."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return orjson.loads(data.decode("utf-8", "replace"))


class StreamDecoder(Protocol):
    """Frames a provider's stream: network reads in, complete events out (see upstream/sse.py)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...

    def close(self) -> list[SSEEvent]: ...


# Capability names (issue #3): what a deployment can be asked to do.
CHAT = "chat"
STREAM = "stream"
TOOLS = "tools"
VISION = "vision"
JSON_MODE = "json_mode"
JSON_SCHEMA = "json_schema"
EMBEDDINGS = "embeddings"
ALL_CHAT = frozenset({CHAT, STREAM, TOOLS, VISION, JSON_MODE, JSON_SCHEMA})


class StreamTranslator(ABC):
    """Per-stream state: upstream events in, OpenAI SSE frames out.

    `feed` raises a GatewayError when the provider reports an error inside the stream; the
    pipeline turns it into the in-band error event. `finish` is called at upstream EOF and
    returns the closing frames, or raises UpstreamProtocolError if the stream was cut short.
    """

    usage: Usage | None = None
    finished: bool = False

    @abstractmethod
    def feed(self, event: SSEEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]:
        if not self.finished:
            raise UpstreamProtocolError("the provider ended the stream before it was complete")
        return []


class Adapter(ABC):
    """One provider's translation. Subclasses set `provider` and implement the four methods."""

    provider: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = ALL_CHAT
    # True when `sign` must run before each send (SigV4, OAuth bearer tokens).
    needs_signing: ClassVar[bool] = False

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry

    def stream_decoder(self) -> StreamDecoder:
        from ..upstream.sse import SSEDecoder

        return SSEDecoder()

    async def sign(self, request: UpstreamRequest, transport: Any) -> UpstreamRequest:
        """Add per-attempt credentials; `transport` is the deployment's, for token fetches."""
        return request

    def refuse(self, request: ChatRequest | EmbeddingsRequest, name: str) -> None:
        """Refuse parameter `name`, which this provider cannot honour, with a 400 naming it.

        With `drop_params: true` on the model entry it returns instead, and the caller leaves the
        parameter out of the provider's request.
        """
        if not self.entry.drop_params:
            raise InvalidRequestError(
                f"parameter '{name}' is not supported by model '{request.model}' "
                f"(provider {self.entry.provider}); remove it or set drop_params: true",
                param=name,
                code="unsupported_parameter",
            )

    def unsupported(self, model: str, what: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"model '{model}' (provider {self.provider}) does not support {what}",
            param="model",
            code="unsupported_operation",
        )

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        raise self.unsupported(request.model, "embeddings")

    def parse_embeddings_response(
        self, request: EmbeddingsRequest, reply: UpstreamReply
    ) -> EmbeddingsResponse:
        raise self.unsupported(request.model, "embeddings")

    @abstractmethod
    def build_request(self, request: ChatRequest) -> UpstreamRequest: ...

    @abstractmethod
    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse: ...

    @abstractmethod
    def stream_translator(self, request: ChatRequest) -> StreamTranslator: ...

    @abstractmethod
    def map_error(self, reply: UpstreamReply) -> GatewayError: ...
