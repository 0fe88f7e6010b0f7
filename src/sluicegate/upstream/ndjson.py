"""Incremental newline-delimited JSON decoder (Ollama's native streams, reference §6.1).

Yields one `SSEEvent("message", line)` per non-blank line so adapters translate NDJSON with
the same `StreamTranslator.feed` they use for SSE. A final line without a newline is still an
event at end of stream: NDJSON servers need not end their last object with one.
"""

from __future__ import annotations

from .sse import SSEEvent


class NDJSONDecoder:
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        return [SSEEvent("message", line.rstrip(b"\r")) for line in lines if line.strip()]

    def close(self) -> list[SSEEvent]:
        rest, self._buf = self._buf.strip(), b""
        return [SSEEvent("message", rest)] if rest else []
