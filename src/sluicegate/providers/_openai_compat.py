"""Shared base for every provider that speaks OpenAI Chat Completions on the wire.

The request goes out as the caller's body with `model` replaced by the provider's id and
`stream_options.include_usage` added to streams (so every call can be priced); replies and
stream events are passed through byte for byte, parsed only to read usage and errors.
Embeddings and legacy completions go the same way to `endpoint("embeddings")` and
`endpoint("completions")`: the caller's body with `model` replaced, the reply passed on as sent.
Vendors differ in base URL, auth header, unsupported parameters and error-body shape; those
are class attributes and small hooks, so a new vendor is a few lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ..errors import GatewayError, UpstreamProtocolError, UpstreamStatusError
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)
from ..upstream.sse import SSEEvent
from ._translate import error_json
from .base import (
    ALL_CHAT,
    DONE_FRAME,
    EMBEDDINGS,
    Adapter,
    StreamTranslator,
    loads_lenient,
    retry_hint_headers,
    sse_frame,
)

# An embeddings reply's `usage` is a flat object ({"prompt_tokens":8,"total_tokens":8}, vLLM adds
# nulls); it comes last, after the vectors, so it is read from the tail without parsing the vectors.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')
# What follows an `"embedding"` key: `[` opens floats, `"` a base64 string.
_VECTOR_START = re.compile(rb'\s*:\s*([\["])')


class OpenAIPassthroughStream(StreamTranslator):
    """Forwards OpenAI SSE events unchanged; reads usage; hides the usage chunk the caller did not ask for."""

    __slots__ = ("hide_usage_chunk",)

    def __init__(self, hide_usage_chunk: bool) -> None:
        self.hide_usage_chunk = hide_usage_chunk
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data[:6] == b"[DONE]":
            self.finished = True
            return [DONE_FRAME]
        try:
            chunk = loads_lenient(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider sent a stream event that is not JSON") from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("the provider sent a stream event that is not a JSON object")
        error = chunk.get("error")
        if error:
            raise error_from_body(chunk, 500, {})
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
            if self.hide_usage_chunk and not chunk.get("choices"):
                return []
        # Groq reports usage in an `x_groq` envelope on the last chunk instead.
        x_groq = chunk.get("x_groq")
        if isinstance(x_groq, dict) and x_groq.get("usage"):
            self.usage = Usage.from_openai(x_groq["usage"])
        return [sse_frame(data)]


def error_from_body(body: Any, status: int, headers: Mapping[str, str]) -> UpstreamStatusError:
    """OpenAI `{"error":{...}}`, vLLM's old top-level `{"object":"error",...}`, OpenRouter's int codes."""
    message: str | None = None
    err_type: str | None = None
    param: str | None = None
    code: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        source = err if isinstance(err, dict) else body
        if isinstance(err, str):
            message = err
        else:
            raw_message = source.get("message")
            message = raw_message if isinstance(raw_message, str) else None
            err_type = source.get("type") if isinstance(source.get("type"), str) else None
            param = source.get("param") if isinstance(source.get("param"), str) else None
            code = source.get("code")
    if code is not None and not isinstance(code, str):
        code = str(code)
    return UpstreamStatusError(
        message or f"the provider returned HTTP {status}",
        upstream_status=status,
        upstream_type=err_type,
        param=param,
        code=code,
        headers=retry_hint_headers(headers),
    )


def _embeddings_usage(raw: bytes) -> Usage | None:
    """The usage of an OpenAI embeddings reply read from its tail, or None when that is not possible."""
    at = raw.rfind(b'"usage"')
    if at < 0 or raw[:1] != b"{" or b'"data"' not in raw:
        return None
    match = _USAGE_OBJECT.match(raw, at)
    if match is None:
        return None
    try:
        return Usage.from_openai(orjson.loads(match.group(1)))
    except orjson.JSONDecodeError:
        return None


def _sent_floats(raw: bytes) -> bool:
    """Whether the first vector of an embeddings reply is a float array (found without a full scan)."""
    at = 0
    while (at := raw.find(b'"embedding"', at)) >= 0:
        at += len(b'"embedding"')
        match = _VECTOR_START.match(raw, at)
        if match is not None:  # the key, not the value of `"object": "embedding"`
            return match.group(1) == b"["
    return False


def _float_vectors(data: list[Any]) -> list[list[float]]:
    """The `data[].embedding` float lists in input order (`index`), for the pipeline to re-encode."""

    def position(item: dict[str, Any]) -> int:
        index = item.get("index")
        return index if isinstance(index, int) else 0

    ordered = sorted((item for item in data if isinstance(item, dict)), key=position)
    vectors: list[list[float]] = []
    for item in ordered:
        vector = item.get("embedding")
        if not isinstance(vector, list):
            raise UpstreamProtocolError("the provider's embeddings reply mixes float and base64 vectors")
        vectors.append(vector)
    return vectors


class OpenAICompatibleBase(Adapter):
    """Adapter for any server speaking OpenAI Chat Completions (and its embeddings and legacy completions)."""

    capabilities: ClassVar[frozenset[str]] = ALL_CHAT | {EMBEDDINGS}
    # Whether the server has the legacy `/completions` endpoint; without it the pipeline serves
    # `/v1/completions` by translating to a chat call (pipeline/completions.py).
    legacy_completions: ClassVar[bool] = True
    default_api_base: ClassVar[str | None] = None
    supports_stream_usage: ClassVar[bool] = True
    # Parameters the server rejects or ignores; the caller gets a 400 naming one (or it is dropped
    # when the model sets `drop_params: true`).
    unsupported_params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, entry: Any) -> None:
        super().__init__(entry)
        self.base_url = (entry.api_base or self.default_api_base or "").rstrip("/")
        self.url = self.endpoint("chat/completions")
        self.embeddings_url = self.endpoint("embeddings")
        self.completions_url = self.endpoint("completions")
        # identity: keeps decompression off the hot path (LLM replies are small); set here rather
        # than through aiohttp's skip_auto_headers, which costs more per request.
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if entry.api_key:
            headers.update(self.auth_headers(entry.api_key))
        headers.update(entry.headers)
        self.headers = headers
        self.model_id = entry.upstream_model

    def endpoint(self, path: str) -> str:
        """The URL of one API path (`chat/completions`, `embeddings`, ...); Azure overrides it."""
        return f"{self.base_url}/{path}"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def prepare_body(self, request: ChatRequest) -> dict[str, Any]:
        body = request.body
        if self.unsupported_params:
            present = self.unsupported_params.intersection(body)
            if present:
                self.refuse(request, sorted(present)[0])  # returns only with drop_params: true
                body = {k: v for k, v in body.items() if k not in present}
        out = dict(body)
        out["model"] = self.model_id
        if request.stream and self.supports_stream_usage:
            options = out.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            options["include_usage"] = True
            out["stream_options"] = options
        return out

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.prepare_body(request)))

    def build_completions_request(self, request: ChatRequest) -> UpstreamRequest:
        """Legacy `/completions`, forwarded like chat: same body rules, same passthrough reply and stream."""
        body = orjson.dumps(self.prepare_body(request))
        return UpstreamRequest("POST", self.completions_url, self.headers, body)

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        body = dict(request.body)
        body["model"] = self.model_id
        return UpstreamRequest("POST", self.embeddings_url, self.headers, orjson.dumps(body))

    def parse_embeddings_response(
        self, request: EmbeddingsRequest, reply: UpstreamReply
    ) -> EmbeddingsResponse:
        raw = reply.body
        usage = _embeddings_usage(raw)
        # A server may ignore `encoding_format: base64` and send floats; those go the slow path.
        if usage is not None and not (request.encoding_format == "base64" and _sent_floats(raw)):
            return EmbeddingsResponse(vectors=[], usage=usage, content=raw)
        # Slow path: usage not where OpenAI puts it, an odd body, or base64 ignored by the server.
        try:
            body = loads_lenient(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            if isinstance(body, dict) and body.get("error"):
                raise error_from_body(body, 500, reply.headers)
            raise UpstreamProtocolError("the provider's reply is not an embeddings list")
        usage = Usage.from_openai(body.get("usage"))
        data = body["data"]
        if request.encoding_format == "base64" and any(
            isinstance(item, dict) and isinstance(item.get("embedding"), list) for item in data
        ):
            # Floats where base64 was asked for: the pipeline encodes them as OpenAI would have.
            return EmbeddingsResponse(vectors=_float_vectors(data), usage=usage)
        content = raw if raw[:1] == b"{" else orjson.dumps(body)
        return EmbeddingsResponse(vectors=[], usage=usage, content=content)

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        try:
            body = loads_lenient(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not JSON") from exc
        if not isinstance(body, dict) or "choices" not in body:
            if isinstance(body, dict) and body.get("error"):
                raise error_from_body(body, 500, reply.headers)
            raise UpstreamProtocolError("the provider's reply is not a chat completion")
        finish = None
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            finish = choices[0].get("finish_reason")
        # DeepSeek may prefix replies with blank lines under load; send clean JSON on.
        content = reply.body if reply.body[:1] == b"{" else orjson.dumps(body)
        return ChatResponse(content=content, usage=Usage.from_openai(body.get("usage")), finish_reason=finish)

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return OpenAIPassthroughStream(
            hide_usage_chunk=self.supports_stream_usage and not request.include_usage
        )

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        body = error_json(reply.body)
        if body is None:
            text = reply.body[:500].decode("utf-8", "replace").strip()
            body = {"error": {"message": text or None}}
        return error_from_body(body, reply.status, reply.headers)
