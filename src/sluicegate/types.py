"""Internal request, response and usage types that every adapter translates to and from.

The gateway's internal dialect *is* OpenAI Chat Completions: a request is the caller's JSON
object (already parsed, `sluicegate` controls removed) plus a few facts the pipeline needs
up front. Keeping the dict rather than copying it into a typed tree is what lets the OpenAI
path forward a call with one `orjson.dumps` and pass responses through byte for byte;
translating adapters (Anthropic, ...) read the dict and write their own wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Usage:
    """Token counts of one call, normalised to OpenAI's meaning (prompt includes cached)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }
        if self.cache_write_tokens:
            out["prompt_tokens_details"]["cache_write_tokens"] = self.cache_write_tokens
        return out

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )


@dataclass(slots=True)
class ChatRequest:
    """One Chat Completions call as the pipeline hands it to an adapter.

    `body` is the caller's object with `sluicegate` controls removed; adapters must not mutate
    it (a retry on another deployment reuses it). Absent keys stay absent: never add nulls.
    """

    body: dict[str, Any]
    model: str
    stream: bool = False
    # Whether the caller itself asked for `stream_options.include_usage`; the gateway asks the
    # provider for usage regardless (to price the call) and hides the extra chunk otherwise.
    include_usage: bool = False
    # The caller's `sluicegate` body object (per-request controls, SPEC §6), taken out of `body`.
    controls: Any = None


@dataclass(slots=True)
class ChatResponse:
    """A finished non-streamed reply: the bytes to send and the usage to bill."""

    content: bytes
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(slots=True)
class UpstreamRequest:
    """What an adapter asks the upstream client to send. Pure data: no I/O happens here."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True)
class UpstreamReply:
    """A provider's complete (non-streamed) answer as read off the wire."""

    status: int
    # Case-insensitive in practice (aiohttp's CIMultiDictProxy); adapters must not rely on key case.
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(slots=True)
class EmbeddingsRequest:
    """One `/v1/embeddings` call: the caller's body (validated) and what the pipeline decided up front.

    `inputs` is the input normalised to a list (strings, or token-id lists); `encoding_format` is
    what the caller asked for: adapters always produce floats, and the pipeline encodes base64.
    """

    body: dict[str, Any]
    model: str
    inputs: list[Any]
    encoding_format: str = "float"
    dimensions: int | None = None
    controls: Any = None  # the caller's `sluicegate` body object, taken out of `body`


@dataclass(slots=True)
class EmbeddingsResponse:
    """Vectors in input order (floats) and the usage to bill.

    `content`, when set, is the provider's reply already in OpenAI's shape (the encoding the caller
    asked for included): the pipeline sends it byte for byte and ignores `vectors`, which saves
    decoding and re-encoding thousands of floats per call on the OpenAI-family path.
    """

    vectors: list[list[float]]
    usage: Usage | None = None
    content: bytes | None = None
