"""Small raw-ASGI helpers: header lookup, bounded body reading, sending complete responses.

The gateway is a plain ASGI callable rather than a framework app: on the hot path every
microsecond of routing and wrapping shows up in the benchmark (SPEC §9).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import InvalidRequestError, RequestTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_CT = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front of us not to buffer the stream
]

# Request headers the gateway reads; everything else is ignored in one pass over the list.
WANTED_HEADERS = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"x-request-id",
        b"content-length",
        # Per-request routing controls (SPEC §6, routing/controls.py).
        b"x-sluicegate-fallbacks",
        b"x-sluicegate-retries",
        b"x-sluicegate-timeout-s",
        b"x-sluicegate-priority",
        b"x-sluicegate-tags",  # recorded on the ledger and log rows (pipeline/accounting.py)
    }
)


class ClientDisconnected(Exception):
    """The client went away before the request body was read."""


def pick_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return {name: value for name, value in raw if name in WANTED_HEADERS}


async def read_body(receive: Receive, limit: int, content_length: bytes | None) -> bytes:
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError as exc:
            raise InvalidRequestError("invalid Content-Length header") from exc
        if declared > limit:
            raise RequestTooLargeError(f"request body is {declared} bytes; the limit is {limit} bytes")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise RequestTooLargeError(f"request body exceeds the limit of {limit} bytes")
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


async def send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DisconnectWatcher:
    """Cancels the current task when the client goes away, so the upstream call stops at once.

    Streaming handlers (chat streams, passthrough) start one while they relay; `fired` tells a
    cancellation caused by the client from any other, and `active` is cleared just before the final
    send, since uvicorn then reports "disconnect" for a finished response too.
    """

    __slots__ = ("_target", "_task", "active", "fired")

    def __init__(self, receive: Receive) -> None:
        self._target = asyncio.current_task()
        self.active = True
        self.fired = False
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.active and self._target is not None:
            self.fired = True
            self._target.cancel()

    def stop(self) -> None:
        self.active = False
        self._task.cancel()
