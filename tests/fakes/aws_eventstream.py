"""Encoder of the AWS event-stream binary framing (reference §5.5), for the Bedrock fake and the tests.

The gateway only ever decodes this format (src/sluicegate/upstream/eventstream.py), so the
encoder lives with the tests. It writes every header value type and correct CRCs; `corrupt`
helpers in the tests flip bytes of its output to check that the decoder rejects them.
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from typing import Any

# Header value types, as in the reference table.
BOOL_TRUE, BOOL_FALSE, BYTE, SHORT, INTEGER, LONG, BYTES, STRING, TIMESTAMP, UUID = range(10)

Header = tuple[str, int, Any]


def encode_header(name: str, kind: int, value: Any) -> bytes:
    """One header entry: name length, name, value type, value."""
    raw_name = name.encode()
    out = struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">B", kind)
    if kind in (BOOL_TRUE, BOOL_FALSE):
        return out
    if kind == BYTE:
        return out + struct.pack(">b", value)
    if kind == SHORT:
        return out + struct.pack(">h", value)
    if kind == INTEGER:
        return out + struct.pack(">i", value)
    if kind in (LONG, TIMESTAMP):
        return out + struct.pack(">q", value)
    if kind in (BYTES, STRING):
        data = value.encode() if kind == STRING else bytes(value)
        return out + struct.pack(">H", len(data)) + data
    if kind == UUID:
        return out + (value.bytes if isinstance(value, uuid.UUID) else bytes(value))
    raise ValueError(f"unknown header type {kind}")


def encode_message(headers: list[Header], payload: bytes) -> bytes:
    """A complete message with both CRCs."""
    header_bytes = b"".join(encode_header(*header) for header in headers)
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + header_bytes + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """An `event` message with a JSON payload, headers in the order AWS sends them."""
    return encode_message(
        [
            (":event-type", STRING, event_type),
            (":content-type", STRING, "application/json"),
            (":message-type", STRING, "event"),
        ],
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception(exception_type: str, message: str, **extra: Any) -> bytes:
    """An `exception` message (e.g. `throttlingException`) with its `{"message": ...}` payload."""
    return encode_message(
        [
            (":exception-type", STRING, exception_type),
            (":content-type", STRING, "application/json"),
            (":message-type", STRING, "exception"),
        ],
        json.dumps({"message": message, **extra}).encode(),
    )


def error(code: str, message: str) -> bytes:
    """An `error` message: code and text in headers, empty payload."""
    return encode_message(
        [
            (":error-code", STRING, code),
            (":error-message", STRING, message),
            (":message-type", STRING, "error"),
        ],
        b"",
    )
