"""Incremental decoder of the AWS event-stream binary framing (reference §5.5), used by Bedrock streams.

A message is `total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload |
message_crc u32`, big-endian, both CRCs the IEEE/zlib CRC-32. Network reads are buffered until
a whole message is in; both CRCs are checked and a mismatch (or an impossible length) raises
UpstreamProtocolError, since nothing after a corrupt frame can be trusted.

Messages come out as `SSEEvent`s so Bedrock's translator has the same `feed(event)` shape as
every SSE provider:

- `:message-type: event` -> `SSEEvent(<:event-type>, <payload>)`, e.g. `("contentBlockDelta", b"{...}")`;
- `:message-type: exception` -> `SSEEvent("exception:" + <:exception-type>, <payload>)`, e.g.
  `("exception:throttlingException", b'{"message": "..."}')`;
- `:message-type: error` -> `SSEEvent("error:" + <:error-code>, b'{"message": <:error-message>}')`
  (error frames carry their text in headers, so the decoder rebuilds the usual JSON payload).

The `exception:` / `error:` prefixes can never collide with an event name (event types are
bare identifiers), so a translator tells a failure apart with one `startswith`.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any, NamedTuple

import orjson

from ..errors import UpstreamProtocolError
from .sse import SSEEvent

PRELUDE_LENGTH = 12  # total_length, headers_length, prelude_crc
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + 4  # plus the message CRC
# botocore's limits: anything larger is a corrupt length field, not a real message.
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

EXCEPTION_PREFIX = "exception:"
ERROR_PREFIX = "error:"

# Header value types (reference §5.5).
BOOL_TRUE, BOOL_FALSE, BYTE, SHORT, INTEGER, LONG, BYTES, STRING, TIMESTAMP, UUID = range(10)
_FIXED = {BYTE: struct.Struct(">b"), SHORT: struct.Struct(">h"), INTEGER: struct.Struct(">i")}
_INT64 = struct.Struct(">q")
_U16 = struct.Struct(">H")
_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")


class EventStreamMessage(NamedTuple):
    """One decoded message: headers by name (value types below) and the raw payload."""

    headers: dict[str, Any]
    payload: bytes


def decode_headers(data: bytes | memoryview) -> dict[str, Any]:
    """Header bytes -> {name: value}.

    Values: bool, int (int8/16/32/64), bytes, str, int milliseconds since the epoch (timestamp),
    uuid.UUID. Raises UpstreamProtocolError on a truncated entry or an unknown value type.
    """
    view = memoryview(data)
    headers: dict[str, Any] = {}
    pos, end = 0, len(view)
    try:
        while pos < end:
            name_length = view[pos]
            pos += 1
            name = bytes(view[pos : pos + name_length]).decode("utf-8")
            pos += name_length
            kind = view[pos]
            pos += 1
            value: Any
            if kind == BOOL_TRUE:
                value = True
            elif kind == BOOL_FALSE:
                value = False
            elif kind in _FIXED:
                fixed = _FIXED[kind]
                (value,) = fixed.unpack_from(view, pos)
                pos += fixed.size
            elif kind in (LONG, TIMESTAMP):
                (value,) = _INT64.unpack_from(view, pos)
                pos += 8
            elif kind in (BYTES, STRING):
                (length,) = _U16.unpack_from(view, pos)
                pos += 2
                raw = bytes(view[pos : pos + length])
                if len(raw) != length:
                    raise UpstreamProtocolError("the provider sent an event-stream header that is cut short")
                value = raw.decode("utf-8") if kind == STRING else raw
                pos += length
            elif kind == UUID:
                raw = bytes(view[pos : pos + 16])
                if len(raw) != 16:
                    raise UpstreamProtocolError("the provider sent an event-stream header that is cut short")
                value = uuid.UUID(bytes=raw)
                pos += 16
            else:
                raise UpstreamProtocolError(
                    f"the provider sent an event-stream header {name!r} of unknown type {kind}"
                )
            if pos > end:
                raise UpstreamProtocolError("the provider sent an event-stream header that is cut short")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise UpstreamProtocolError(
            "the provider sent an event-stream header block that is malformed"
        ) from exc
    return headers


def decode_message(frame: bytes | memoryview) -> EventStreamMessage:
    """Decode exactly one complete message (both CRCs checked)."""
    view = memoryview(frame)
    if len(view) < MIN_MESSAGE_LENGTH:
        raise UpstreamProtocolError("the provider sent an event-stream message shorter than its prelude")
    total, headers_length, prelude_crc = _PRELUDE.unpack_from(view, 0)
    _check_prelude(view, total, headers_length, prelude_crc)
    if total != len(view):
        raise UpstreamProtocolError(
            f"the provider sent an event-stream message of {len(view)} bytes that declares {total}"
        )
    return _decode_body(view, total, headers_length)


def _check_prelude(view: memoryview, total: int, headers_length: int, prelude_crc: int) -> None:
    if zlib.crc32(view[:8]) != prelude_crc:
        raise UpstreamProtocolError("the provider sent an event-stream message with a bad prelude CRC")
    if headers_length > MAX_HEADERS_LENGTH:
        raise UpstreamProtocolError(
            f"the provider sent event-stream headers of {headers_length} bytes (limit {MAX_HEADERS_LENGTH})"
        )
    payload_length = total - headers_length - MIN_MESSAGE_LENGTH
    if payload_length < 0:
        raise UpstreamProtocolError(
            f"the provider sent an event-stream message whose length {total} cannot hold its headers"
        )
    if payload_length > MAX_PAYLOAD_LENGTH:
        raise UpstreamProtocolError(
            f"the provider sent an event-stream payload of {payload_length} bytes "
            f"(limit {MAX_PAYLOAD_LENGTH})"
        )


def _decode_body(view: memoryview, total: int, headers_length: int) -> EventStreamMessage:
    (message_crc,) = _U32.unpack_from(view, total - 4)
    if zlib.crc32(view[: total - 4]) != message_crc:
        raise UpstreamProtocolError("the provider sent an event-stream message with a bad message CRC")
    headers_end = PRELUDE_LENGTH + headers_length
    headers = decode_headers(view[PRELUDE_LENGTH:headers_end])
    return EventStreamMessage(headers, bytes(view[headers_end : total - 4]))


def to_event(message: EventStreamMessage) -> SSEEvent:
    """A message as the SSEEvent a translator receives (see the module docstring for the naming)."""
    headers = message.headers
    kind = headers.get(":message-type", "event")
    if kind == "exception":
        return SSEEvent(EXCEPTION_PREFIX + str(headers.get(":exception-type", "")), message.payload)
    if kind == "error":
        text = headers.get(":error-message", "")
        return SSEEvent(ERROR_PREFIX + str(headers.get(":error-code", "")), orjson.dumps({"message": text}))
    return SSEEvent(str(headers.get(":event-type", "")), message.payload)


class EventStreamDecoder:
    """Feed it network reads; it returns one SSEEvent per complete message (see the module docstring)."""

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = b""
        # Bytes needed before the next message can be decoded: its whole length once the prelude
        # is in, so a large message split over many reads is not re-examined on every read.
        self._need = PRELUDE_LENGTH

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if len(buf) < self._need:
            self._buf = buf
            return []
        events: list[SSEEvent] = []
        view = memoryview(buf)  # over immutable bytes: slices copy nothing
        pos, available = 0, len(buf)
        self._need = PRELUDE_LENGTH
        while available - pos >= PRELUDE_LENGTH:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(view, pos)
            # Checked before waiting for the rest: a corrupt length must fail now, not after 4 GB.
            _check_prelude(view[pos : pos + 8], total, headers_length, prelude_crc)
            if available - pos < total:
                self._need = total
                break
            events.append(to_event(_decode_body(view[pos : pos + total], total, headers_length)))
            pos += total
        self._buf = bytes(view[pos:]) if pos < available else b""
        return events

    def close(self) -> list[SSEEvent]:
        """At end of stream: leftover bytes mean the last message was cut off."""
        if self._buf:
            left = len(self._buf)
            self._buf = b""
            raise UpstreamProtocolError(
                f"the provider's event stream ended inside a message ({left} bytes left undecoded)"
            )
        return []
