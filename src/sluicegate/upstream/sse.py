"""Incremental Server-Sent Events decoder following the WHATWG rules (reference §7).

Works on bytes: CR, LF and CRLF end a line (a CR at the end of one read waits for the next
read in case an LF follows), `:` lines are comments, multi-line `data` is joined with `\\n`,
one leading BOM is dropped, and an event not closed by a blank line at end of stream is
discarded. UTF-8 is never decoded here; CR and LF bytes cannot occur inside a multi-byte
UTF-8 sequence, so splitting bytes is the same as splitting text, and JSON parsers take bytes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    event: str
    data: bytes
    id: str | None = None


class SSEDecoder:
    """Feed it network reads; it returns the events each read completes."""

    __slots__ = ("_buf", "_data", "_event", "_last_id", "_started", "retry_ms")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event = b""
        self._last_id: str | None = None
        self._started = False
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf  # could still be a BOM; wait for more bytes
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        events: list[SSEEvent] = []
        pos = 0
        end = len(buf)
        while True:
            match = _EOL.search(buf, pos)
            if match is None:
                break
            if match.end() == end and buf[match.start()] == 13 and match.end() - match.start() == 1:
                break  # lone CR at the end of this read: an LF may follow in the next one
            self._line(buf[pos : match.start()], events)
            pos = match.end()
        self._buf = buf[pos:]
        return events

    def close(self) -> list[SSEEvent]:
        """At end of stream: a held-back final CR still ends its line; an unfinished event is dropped."""
        events: list[SSEEvent] = []
        if self._buf.endswith(b"\r"):
            self._line(self._buf[:-1], events)
        self._buf = b""
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[0] == 58:  # ":" comment (keep-alives, pings)
            return
        colon = line.find(b":")
        if colon == -1:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\x00" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if not self._data:
            self._event = b""
            return
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = self._event.decode("utf-8", "replace") if self._event else "message"
        events.append(SSEEvent(event, data, self._last_id))
        self._data = []
        self._event = b""
