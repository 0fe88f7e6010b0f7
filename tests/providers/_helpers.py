"""What the adapter unit tests share: recorded fixtures, adapters built from a few entry fields,
requests and replies as the pipeline hands them over, and streams fed through a decoder in
awkward read sizes and decoded back into chunks. Each test module binds these to its provider
in a few one-line helpers (`load`, `make_adapter`, `chat`, ...), so the tests read the same
whichever adapter they check."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sluicegate.config.schema import ModelEntry
from sluicegate.providers.base import DONE_FRAME, Adapter, StreamDecoder, StreamTranslator
from sluicegate.types import ChatRequest, EmbeddingsRequest, UpstreamReply, UpstreamRequest
from sluicegate.upstream.sse import SSEEvent

A = TypeVar("A", bound=Adapter)


def fixture_dir(provider: str) -> Path:
    """`fixtures/<provider>/`: the provider's recorded requests, replies and streams."""
    return Path(__file__).parent / "fixtures" / provider


def fixture_bytes(provider: str, name: str) -> bytes:
    """A recorded file from `fixtures/<provider>/`."""
    return (fixture_dir(provider) / name).read_bytes()


def load_fixture(provider: str, name: str) -> Any:
    """A recorded JSON fixture from `fixtures/<provider>/`, parsed afresh on every call."""
    return orjson.loads(fixture_bytes(provider, name))


def adapter_factory(cls: type[A], **defaults: Any) -> Callable[..., A]:
    """`make_adapter(**fields)`: an adapter of `cls` for a model entry of `defaults` updated by `fields`."""

    def make_adapter(**fields: Any) -> A:
        return cls(ModelEntry(**{**defaults, **fields}))

    return make_adapter


def chat_request(body: dict[str, Any], model: str, *, include_usage: bool = False) -> ChatRequest:
    """The ChatRequest for `body` with its `model` (else `model`) and `stream`, as the pipeline sets them."""
    return ChatRequest(
        body=body,
        model=body.get("model", model),
        stream=bool(body.get("stream")),
        include_usage=include_usage,
    )


def embeddings_request(body: dict[str, Any], model: str) -> EmbeddingsRequest:
    """The EmbeddingsRequest for `body`, its `input` normalised to a list as the pipeline does."""
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return EmbeddingsRequest(body=body, model=model, inputs=inputs, dimensions=body.get("dimensions"))


def sent_body(adapter: Adapter, request: ChatRequest) -> dict[str, Any]:
    """The JSON body `adapter` would send upstream for `request`."""
    result: dict[str, Any] = orjson.loads(adapter.build_request(request).body)
    return result


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> UpstreamReply:
    """A provider reply: `body` as JSON (or as given, when bytes)."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status=status, headers=headers or {}, body=raw)


def event(payload: dict[str, Any], name: str | None = None) -> SSEEvent:
    """One decoded stream event carrying `payload`; its name defaults to the payload's `type`."""
    return SSEEvent(name if name is not None else str(payload.get("type", "message")), orjson.dumps(payload))


def feed_stream(
    translator: StreamTranslator,
    decoder: StreamDecoder,
    raw: bytes,
    *,
    read: int | None = None,
    finish: bool = False,
) -> list[bytes]:
    """The frames `translator` makes of `raw`, decoded in `read`-byte pieces (all at once when None).

    The decoder is closed at the end (a last event without its blank line still counts); with
    `finish` the translator's closing frames are added, as the pipeline does at upstream EOF.
    """
    size = read or max(1, len(raw))
    frames: list[bytes] = []
    for start in range(0, len(raw), size):
        for event in decoder.feed(raw[start : start + size]):
            frames.extend(translator.feed(event))
    for event in decoder.close():
        frames.extend(translator.feed(event))
    if finish:
        frames.extend(translator.finish())
    return frames


def decode_frames(frames: list[bytes], *, minted_id: bool = False) -> list[Any]:
    """SSE frames -> chunk dicts (one shared `created` checked, then removed) or the string "[DONE]".

    With `minted_id` the chunks' `id` is the gateway's own: checked to be one `chatcmpl-` id, then removed.
    """
    out: list[Any] = []
    seen: set[tuple[Any, int]] = set()
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n") and b"\n" not in frame[:-2]
        if frame == DONE_FRAME:
            out.append("[DONE]")
            continue
        chunk = orjson.loads(frame[6:])
        seen.add((chunk.pop("id") if minted_id else None, chunk.pop("created")))
        out.append(chunk)
    assert len(seen) <= 1 and all(isinstance(created, int) for _, created in seen)
    if minted_id:
        assert all(chunk_id.startswith("chatcmpl-") for chunk_id, _ in seen)
    return out


def post(upstream: UpstreamRequest) -> UpstreamReply:
    """Send an adapter's request over real HTTP (to a fake) and return the reply, error statuses included."""
    request = urllib.request.Request(
        upstream.url, data=upstream.body, headers=upstream.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return UpstreamReply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return UpstreamReply(error.code, dict(error.headers), error.read())
