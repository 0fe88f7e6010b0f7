"""The AWS event-stream decoder (upstream/eventstream.py): framing, CRCs, header types, split reads."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from sluicegate.errors import UpstreamProtocolError
from sluicegate.upstream.eventstream import (
    MAX_HEADERS_LENGTH,
    EventStreamDecoder,
    decode_headers,
    decode_message,
)
from sluicegate.upstream.sse import SSEEvent
from tests.fakes import aws_eventstream as es

# Reference §5.5 worked frame, byte for byte.
WORKED_FRAME = bytes.fromhex(
    "0000009f00000057c37babff0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c7461"
    "0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e"
    "0d3a6d6573736167652d747970650700056576656e74"
    "7b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d2c2270223a2261626364227d"
    "f2ace5ff"
)
WORKED_PAYLOAD = b'{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}'
STREAM = (
    es.event("messageStart", {"role": "assistant"})
    + es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}})
    + es.exception("throttlingException", "Too many requests")
    + es.error("InternalFailure", "boom")
)
EXPECTED = [
    SSEEvent("messageStart", b'{"role":"assistant"}'),
    SSEEvent("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hello"}}'),
    SSEEvent("exception:throttlingException", b'{"message": "Too many requests"}'),
    SSEEvent("error:InternalFailure", b'{"message":"boom"}'),
]


def test_worked_frame_of_the_reference_decodes() -> None:
    """The reference's worked frame gives its event type and its 56-byte payload."""
    assert EventStreamDecoder().feed(WORKED_FRAME) == [SSEEvent("contentBlockDelta", WORKED_PAYLOAD)]
    message = decode_message(WORKED_FRAME)
    assert message.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert len(message.payload) == 56


def test_test_encoder_reproduces_the_worked_frame() -> None:
    """The tests' encoder writes the worked frame byte for byte (so the fake's frames are real ones)."""
    headers = [
        (":event-type", es.STRING, "contentBlockDelta"),
        (":content-type", es.STRING, "application/json"),
        (":message-type", es.STRING, "event"),
    ]
    assert es.encode_message(headers, WORKED_PAYLOAD) == WORKED_FRAME


def test_round_trip_of_events_exceptions_and_errors_in_one_read() -> None:
    """Events keep their type; exception and error frames get the `exception:` / `error:` prefixes."""
    decoder = EventStreamDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert decoder.close() == []


@pytest.mark.parametrize("size", [1, 2, 3, 7, 11, 12, 13, 16, 64])
def test_reads_of_any_size_give_the_same_events(size: int) -> None:
    """The stream cut into reads of `size` bytes decodes to the same events in the same order."""
    decoder = EventStreamDecoder()
    events: list[SSEEvent] = []
    for start in range(0, len(STREAM), size):
        events.extend(decoder.feed(STREAM[start : start + size]))
    assert events == EXPECTED
    assert decoder.close() == []


def test_split_at_every_byte_offset() -> None:
    """Two reads split at any byte offset of the stream decode to the same events."""
    for cut in range(len(STREAM) + 1):
        decoder = EventStreamDecoder()
        events = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert events == EXPECTED, f"split at byte {cut}"
        assert decoder.close() == []


def test_empty_reads_are_harmless() -> None:
    """Empty reads before, between and after frames produce nothing and lose nothing."""
    decoder = EventStreamDecoder()
    assert decoder.feed(b"") == []
    events = decoder.feed(STREAM[:5]) + decoder.feed(b"") + decoder.feed(STREAM[5:]) + decoder.feed(b"")
    assert events == EXPECTED


def test_bad_prelude_crc_is_rejected_before_the_message_arrives() -> None:
    """A wrong prelude CRC raises as soon as the prelude is in, without waiting for the declared length."""
    frame = bytearray(WORKED_FRAME)
    frame[8] ^= 0xFF
    with pytest.raises(UpstreamProtocolError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(frame[:12]))


def test_corrupt_length_is_caught_by_the_prelude_crc() -> None:
    """A flipped bit in total_length is a prelude CRC failure, not a wait for gigabytes."""
    frame = bytearray(WORKED_FRAME)
    frame[0] ^= 0x40
    with pytest.raises(UpstreamProtocolError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_bad_message_crc_is_rejected() -> None:
    """A payload byte changed after the prelude fails the message CRC."""
    frame = bytearray(WORKED_FRAME)
    frame[-10] ^= 0x01
    with pytest.raises(UpstreamProtocolError, match="message CRC"):
        EventStreamDecoder().feed(bytes(frame))
    wrong_crc = WORKED_FRAME[:-4] + b"\x00\x00\x00\x00"
    with pytest.raises(UpstreamProtocolError, match="message CRC"):
        decode_message(wrong_crc)


def _prelude(total: int, headers_length: int) -> bytes:
    head = struct.pack(">II", total, headers_length)
    return head + struct.pack(">I", zlib.crc32(head))


def test_lengths_that_cannot_hold_the_frame_are_rejected() -> None:
    """A total shorter than prelude + headers + CRC, or headers over 128 KiB, is a protocol error."""
    with pytest.raises(UpstreamProtocolError, match="cannot hold"):
        EventStreamDecoder().feed(_prelude(20, 10) + b"\x00" * 8)
    with pytest.raises(UpstreamProtocolError, match="limit"):
        EventStreamDecoder().feed(_prelude(MAX_HEADERS_LENGTH + 100, MAX_HEADERS_LENGTH + 1))


def test_payload_over_the_limit_is_rejected() -> None:
    """A payload declared over 24 MiB is refused at the prelude."""
    with pytest.raises(UpstreamProtocolError, match="payload"):
        EventStreamDecoder().feed(_prelude(25 * 1024 * 1024, 0))


def test_stream_ending_inside_a_message_is_an_error_at_close() -> None:
    """Bytes left over when the body ends mean a cut-off message: close() raises."""
    decoder = EventStreamDecoder()
    assert decoder.feed(STREAM[:-3]) == EXPECTED[:3]
    with pytest.raises(UpstreamProtocolError, match="ended inside a message"):
        decoder.close()


def test_every_header_value_type_decodes() -> None:
    """All ten header value types of the spec decode to Python values (reference §5.5)."""
    ident = uuid.UUID("0123456789abcdef0123456789abcdef")
    headers = [
        ("t", es.BOOL_TRUE, True),
        ("f", es.BOOL_FALSE, False),
        ("byte", es.BYTE, -7),
        ("short", es.SHORT, -300),
        ("int", es.INTEGER, 70000),
        ("long", es.LONG, -(2**40)),
        ("bytes", es.BYTES, b"\x00\xff"),
        ("string", es.STRING, "héllo"),
        ("time", es.TIMESTAMP, 1_700_000_000_123),
        ("uuid", es.UUID, ident),
    ]
    message = decode_message(es.encode_message(headers, b"{}"))
    assert message.headers == {
        "t": True,
        "f": False,
        "byte": -7,
        "short": -300,
        "int": 70000,
        "long": -(2**40),
        "bytes": b"\x00\xff",
        "string": "héllo",
        "time": 1_700_000_000_123,
        "uuid": ident,
    }
    assert message.payload == b"{}"


def test_unknown_header_type_and_truncated_header_are_rejected() -> None:
    """A header value type outside 0-9, or a header cut short, is a protocol error."""
    with pytest.raises(UpstreamProtocolError, match="unknown type 10"):
        decode_headers(b"\x01a\x0a")
    with pytest.raises(UpstreamProtocolError):
        decode_headers(b"\x01a\x07\x00\x05ab")
    with pytest.raises(UpstreamProtocolError):
        decode_headers(b"\x01a\x04\x00")


def test_message_without_message_type_is_an_event() -> None:
    """A message with only `:event-type` is treated as an event (the default message type)."""
    frame = es.encode_message([(":event-type", es.STRING, "metadata")], b'{"usage":{}}')
    assert EventStreamDecoder().feed(frame) == [SSEEvent("metadata", b'{"usage":{}}')]
