"""A minimal pipelined Redis connection for the limiter's hot path (RESP2, scripts only).

Why not redis-py here: its per-command cost (pool checkout, argument packing, reply parsing)
is ~100 us of CPU, several times the ~20 us Redis spends running the limiter's script. This
connection writes each command as soon as it is issued and matches replies to callers in order
(Redis answers in order), so concurrent calls share one socket and one parse pass; nothing is
checked out or locked per call. It speaks only what the limiter needs: AUTH/SELECT at connect,
EVALSHA with a SCRIPT LOAD on NOSCRIPT, and replies made of integers, strings and arrays.

Failure handling: a lost connection fails every pending call with `ConnectionLost`; the next
call reconnects (at most one attempt per `retry_s`, so a Redis outage does not turn into a
connect storm). A reply slower than `timeout_s` drops the connection, failing what was pending.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit


class ConnectionLost(Exception):
    """Redis could not be reached, or the connection broke before the reply arrived."""


class ReplyError(Exception):
    """Redis answered with an error reply (e.g. NOSCRIPT, a script error)."""


class _Incomplete(Exception):
    pass


def encode_command(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply starting at `pos`: (value, position after it); raises _Incomplete if cut short."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = buf[pos + 1 : end]
    pos = end + 2
    if kind == 58:  # ':' integer
        return int(line), pos
    if kind == 42:  # '*' array
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 36:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 43:  # '+' simple string
        return bytes(line), pos
    if kind == 45:  # '-' error
        return ReplyError(bytes(line).decode(errors="replace")), pos
    raise ConnectionLost(f"unexpected reply type {chr(kind)!r} from Redis")


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout_s: float) -> None:
        self._buffer = bytearray()
        self._waiters: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._timeout = timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._outgoing: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.lost or self.transport is None:
            future.set_exception(ConnectionLost("connection to Redis lost"))
            return future
        # Commands issued in the same loop iteration leave in one write (one syscall) at its end.
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(payload)
        self._waiters.append((future, loop.time()))
        if self._timer is None:
            self._timer = loop.call_later(self._timeout, self._check_timeout)
        return future

    def _flush(self) -> None:
        outgoing = self._outgoing
        if outgoing and self.transport is not None and not self.lost:
            self.transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))
        outgoing.clear()

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        waiters = self._waiters
        try:
            while waiters and pos < len(buf):
                value, pos_after = _parse(buf, pos)
                pos = pos_after
                future, _ = waiters.popleft()
                if not future.done():  # a caller that was cancelled no longer wants its reply
                    if isinstance(value, ReplyError):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except _Incomplete:
            pass
        except (ConnectionLost, ValueError) as exc:
            self._fail(ConnectionLost(f"bad reply from Redis: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return
        if pos:
            del buf[:pos]

    def _check_timeout(self) -> None:
        self._timer = None
        if not self._waiters:
            return
        loop = asyncio.get_running_loop()
        age = loop.time() - self._waiters[0][1]
        if age >= self._timeout:
            self._fail(ConnectionLost(f"no reply from Redis within {self._timeout:g} s"))
            if self.transport is not None:
                self.transport.abort()
        else:
            self._timer = loop.call_later(self._timeout - age, self._check_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionLost(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, error: ConnectionLost) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            future, _ = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)


class Script:
    """A Lua script known by its SHA1; the connection loads it on first use (NOSCRIPT)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest().encode()


class RespConnection:
    """One multiplexed connection to Redis, opened lazily and re-opened after a failure."""

    def __init__(
        self, url: str, *, timeout_s: float = 2.0, connect_timeout_s: float = 2.0, retry_s: float = 1.0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (redis://, rediss://, unix://)")
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._path = parts.path  # unix socket path
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        db = parts.path.lstrip("/") if parts.scheme != "unix" else ""
        for item in parts.query.split("&"):
            name, _, value = item.partition("=")
            if name == "db":
                db = value
        self._db = int(db) if db else 0
        self._timeout = timeout_s
        self._connect_timeout = connect_timeout_s
        self._retry = retry_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._failed_at = -1e9
        self._last_error = ""

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return protocol
        if self._connecting is None:
            if time.monotonic() - self._failed_at < self._retry:
                raise ConnectionLost(f"Redis unreachable: {self._last_error}")
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            if self._scheme == "unix":
                _, protocol = await asyncio.wait_for(
                    loop.create_unix_connection(lambda: _Protocol(self._timeout), self._path),
                    self._connect_timeout,
                )
            else:
                context = ssl.create_default_context() if self._scheme == "rediss" else None
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Protocol(self._timeout), self._host, self._port, ssl=context
                    ),
                    self._connect_timeout,
                )
            setup = []
            if self._password is not None:
                auth = (
                    ("AUTH", self._username, self._password) if self._username else ("AUTH", self._password)
                )
                setup.append(protocol.send(encode_command(auth)))
            if self._db:
                setup.append(protocol.send(encode_command(("SELECT", self._db))))
            for step in setup:
                await step
        except (OSError, TimeoutError, ConnectionLost, ReplyError) as exc:
            self._failed_at = time.monotonic()
            self._last_error = f"{type(exc).__name__}: {exc}"
            raise ConnectionLost(f"cannot connect to Redis: {self._last_error}") from exc
        self._protocol = protocol
        return protocol

    async def call(self, *args: Any) -> Any:
        return await self._send(args, None)

    async def run(
        self,
        script: Script,
        keys: list[str],
        args: list[Any],
        on_orphan: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run a script: EVALSHA, loading it first if this Redis has not seen it (restart, flush).

        `on_orphan` receives the reply if the caller is cancelled after the script was sent, so
        whatever the script reserved can be given back instead of waiting for its expiry.
        """
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self._send(command, on_orphan)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._send(("SCRIPT", "LOAD", script.source), None)
        return await self._send(command, on_orphan)

    async def _send(self, command: tuple[Any, ...], on_orphan: Callable[[Any], None] | None) -> Any:
        protocol = await self._ready()
        future = protocol.send(encode_command(command))
        if on_orphan is None:
            return await future
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(functools.partial(_deliver_orphan, on_orphan))
            raise

    async def close(self) -> None:
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


def _deliver_orphan(on_orphan: Callable[[Any], None], future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        on_orphan(future.result())
