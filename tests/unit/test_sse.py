"""The SSE decoder follows the WHATWG parsing rules (reference §7)."""

from __future__ import annotations

import pytest

from sluicegate.upstream.sse import SSEDecoder, SSEEvent


def decode_all(*reads: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in reads:
        events.extend(decoder.feed(chunk))
    return events + decoder.close()


def test_single_data_event_is_dispatched_on_blank_line() -> None:
    """A `data:` line followed by a blank line yields one `message` event."""
    assert decode_all(b'data: {"a":1}\n\n') == [SSEEvent("message", b'{"a":1}', None)]


def test_multi_line_data_is_joined_with_newlines() -> None:
    """Several `data:` lines in one event are joined with a newline."""
    assert decode_all(b"data: one\ndata: two\n\n")[0].data == b"one\ntwo"


def test_comments_are_ignored() -> None:
    """Lines starting with a colon (keep-alives, pings) produce nothing."""
    assert decode_all(b": keep-alive\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n") == [
        SSEEvent("message", b"x")
    ]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_terminator_is_accepted(eol: bytes) -> None:
    """CR, LF and CRLF all end lines."""
    stream = b"event: ping" + eol + b"data: a" + eol + eol + b"data: b" + eol + eol
    assert decode_all(stream) == [SSEEvent("ping", b"a"), SSEEvent("message", b"b")]


def test_crlf_split_across_reads_is_one_terminator() -> None:
    """A CR at the end of one read and LF at the start of the next end only one line."""
    events = decode_all(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")
    assert events == [SSEEvent("message", b"a"), SSEEvent("message", b"b")]


def test_event_split_mid_json_across_reads() -> None:
    """JSON split over several network reads is delivered whole once the event completes."""
    events = decode_all(b'data: {"choi', b'ces": []', b"}\n", b"\n")
    assert events == [SSEEvent("message", b'{"choices": []}')]


def test_only_one_leading_space_is_stripped() -> None:
    """`data:x` equals `data: x`, and `data:  x` keeps one space."""
    assert [e.data for e in decode_all(b"data:x\n\ndata:  x\n\n")] == [b"x", b" x"]


def test_field_without_colon_and_empty_data() -> None:
    """A bare `data` line appends an empty line, which still dispatches an event with empty data."""
    assert decode_all(b"data\n\n") == [SSEEvent("message", b"")]


def test_event_block_without_data_dispatches_nothing() -> None:
    """A block of only `event:` or comments produces no event, and the event name resets."""
    assert decode_all(b"event: foo\n\ndata: y\n\n") == [SSEEvent("message", b"y")]


def test_unterminated_event_at_end_is_discarded() -> None:
    """An event not closed by a blank line is never dispatched."""
    assert decode_all(b"data: complete\n\ndata: partial\n") == [SSEEvent("message", b"complete")]


def test_leading_bom_is_dropped_even_when_split() -> None:
    """One UTF-8 BOM at stream start is removed, even if it arrives byte by byte."""
    assert decode_all(b"\xef", b"\xbb\xbfdata: a\n\n") == [SSEEvent("message", b"a")]


def test_case_sensitive_names_and_space_before_colon() -> None:
    """`Data:` and `data :` are different field names and are ignored."""
    assert decode_all(b"Data: no\ndata : no\ndata: yes\n\n") == [SSEEvent("message", b"yes")]


def test_id_persists_and_retry_is_read() -> None:
    """`id` carries over to later events; `retry` with digits sets the reconnection time."""
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\n")
    assert [e.id for e in events] == ["7", "7"]
    assert decoder.retry_ms == 1500
