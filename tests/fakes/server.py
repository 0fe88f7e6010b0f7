"""The shared machinery of the fake provider servers: thread, event loop, recording, behaviour queue.

A fake runs an ``aiohttp.web`` server on 127.0.0.1 (random free port) in a daemon thread with its
own event loop, so a gateway running in another OS process can call it over real HTTP while the
test thread scripts it. Subclasses supply only the provider's wire format: routes, request
validation, error bodies, and the non-streamed body and stream events of a successful turn. The
timing and failure behaviours (``SlowFirstToken``, ``CutStream``, ``Error``) are applied here,
identically for every provider.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .behaviours import (
    Behaviour,
    CutStream,
    Error,
    Outcome,
    Reply,
    SlowFirstToken,
    ToolCalls,
    estimate_tokens,
)

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
# In-flight handlers (e.g. a SlowFirstToken stall) are cancelled this long after stop() so a test
# teardown never waits for a scripted delay.
_SHUTDOWN_GRACE_S = 0.2


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake received it; ``json`` is None when the body is not JSON."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes
    query: str = ""  # the raw query string, as sent


class ApiError(Exception):
    """Raised by validation to answer with a provider error (status and provider-shaped body)."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class FakeProviderServer(ABC):
    """Base class of ``FakeOpenAI`` and ``FakeAnthropic``; see the module docstring."""

    #: Path prefix appended to ``http://127.0.0.1:PORT`` to form ``base_url``.
    base_path: str = ""
    #: Content type of a streamed answer (NDJSON and AWS event-stream fakes override it).
    stream_content_type: str = "text/event-stream; charset=utf-8"

    def __init__(self, *, api_key: str | None = None, default: Behaviour | None = None) -> None:
        # When api_key is set, any other key is rejected: lets e2e tests check which key the
        # gateway forwards. When None, any non-empty key is accepted.
        self.api_key = api_key
        self.default: Behaviour = default if default is not None else Reply()
        self.requests: list[RecordedRequest] = []
        # Seconds (time.monotonic) at which a client hung up on a stream the fake was still serving:
        # lets tests prove the gateway closes the upstream connection when its own client leaves.
        self.client_gone_at: list[float] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- lifecycle (test thread)

    def start(self) -> Self:
        """Start serving; returns once the port is bound. Idempotent."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=f"{type(self).__name__}-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"{type(self).__name__} did not start within {_START_TIMEOUT_S}s")
        if failure:
            self._thread.join(_STOP_TIMEOUT_S)
            self._thread = None
            raise RuntimeError(f"{type(self).__name__} failed to start") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread. Idempotent."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None:
            return
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            raise RuntimeError(f"{type(self).__name__} server thread did not stop")
        self._thread = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    # ------------------------------------------------------------- scripting (test thread)

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Append behaviours; the next chat calls take them in order."""
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        """Forget queued behaviours and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.client_gone_at.clear()

    @property
    def pending(self) -> int:
        """How many enqueued behaviours have not been consumed yet."""
        with self._lock:
            return len(self._queue)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were recorded; returns a snapshot."""
        with self._recorded:
            if not self._recorded.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self.requests)} in {timeout}s")
            return list(self.requests)

    # --------------------------------------------------------- provider wire format (subclass)

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The provider's routes; the chat route calls ``serve_chat``."""

    @abstractmethod
    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        """The provider's default error body for ``status``."""

    @abstractmethod
    def response_headers(self, request_id: str) -> dict[str, str]:
        """Headers the provider sets on every response."""

    @abstractmethod
    def new_request_id(self) -> str:
        """A fresh provider-style request id."""

    @abstractmethod
    def default_text(self, body: dict[str, Any]) -> str:
        """The default reply text: ``"fake: "`` + the last user message text."""

    @abstractmethod
    def prompt_words(self, body: dict[str, Any]) -> int:
        """The deterministic prompt-token estimate of a request."""

    @abstractmethod
    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        """The non-streamed response body."""

    @abstractmethod
    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        """The complete SSE stream, one encoded event per item, terminal event included."""

    def wants_stream(self, request: web.Request, body: dict[str, Any]) -> bool:
        """Whether this call asked for a stream; providers that choose it by URL override this."""
        return body.get("stream") is True

    # ------------------------------------------------------------------- shared server side

    async def record(self, request: web.Request) -> tuple[bytes, Any]:
        raw = await request.read()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            json=parsed,
            raw=raw,
            query=request.rel_url.raw_query_string,
        )
        with self._recorded:
            self.requests.append(recorded)
            self._recorded.notify_all()
        return raw, parsed

    def next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def json_response(
        self, payload: Any, *, status: int = 200, request_id: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        all_headers = {**self.response_headers(request_id), **(headers or {})}
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            headers=all_headers,
        )

    def api_error_response(self, error: ApiError, request_id: str) -> web.Response:
        return self.json_response(
            error.body, status=error.status, request_id=request_id, headers=error.headers
        )

    def error_reply(self, behaviour: Error, request_id: str) -> web.Response:
        """The answer to a scripted ``Error``: its body, else the provider's own for its status."""
        payload = (
            behaviour.body if behaviour.body is not None else self.error_body(behaviour.status, request_id)
        )
        return self.json_response(
            payload, status=behaviour.status, request_id=request_id, headers=behaviour.headers
        )

    def outcome(self, body: dict[str, Any], behaviour: Reply | ToolCalls) -> Outcome:
        """Resolve defaults (text, token estimates) of a successful turn against the request."""
        prompt = self.prompt_words(body)
        if isinstance(behaviour, ToolCalls):
            arguments = [name + " " + json.dumps(args) for name, args in behaviour.calls]
            completion = estimate_tokens(behaviour.text or "", *arguments)
            return Outcome(
                text=behaviour.text,
                calls=list(behaviour.calls),
                prompt_tokens=behaviour.prompt_tokens if behaviour.prompt_tokens is not None else prompt,
                completion_tokens=(
                    behaviour.completion_tokens
                    if behaviour.completion_tokens is not None
                    else max(1, completion)
                ),
            )
        text = behaviour.text if behaviour.text is not None else self.default_text(body)
        return Outcome(
            text=text,
            finish_reason=behaviour.finish_reason,
            prompt_tokens=behaviour.prompt_tokens if behaviour.prompt_tokens is not None else prompt,
            completion_tokens=(
                behaviour.completion_tokens
                if behaviour.completion_tokens is not None
                else max(1, estimate_tokens(text))
            ),
            cached_tokens=behaviour.cached_tokens,
            cache_creation_tokens=behaviour.cache_creation_tokens,
        )

    async def serve_chat(
        self, request: web.Request, body: dict[str, Any], request_id: str
    ) -> web.StreamResponse:
        """Answer a validated chat call with the next behaviour."""
        behaviour = self.next_behaviour()
        delay = 0.0
        cut_after: int | None = None
        if isinstance(behaviour, SlowFirstToken):
            delay, behaviour = max(0.0, behaviour.seconds), behaviour.then or Reply()
        if isinstance(behaviour, CutStream):
            cut_after, behaviour = max(0, behaviour.after_events), behaviour.then or Reply()

        if isinstance(behaviour, Error):
            return self.error_reply(behaviour, request_id)

        outcome = self.outcome(body, behaviour)
        if self.wants_stream(request, body):
            return await self._send_stream(request, body, outcome, request_id, delay, cut_after)
        encoded = json.dumps(self.completion_body(body, outcome)).encode()
        if delay:
            await asyncio.sleep(delay)
        if cut_after is not None:
            return await self._send_truncated(request, encoded, request_id, cut_after)
        return web.Response(
            body=encoded, content_type="application/json", headers=self.response_headers(request_id)
        )

    async def _send_stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        outcome: Outcome,
        request_id: str,
        delay: float,
        cut_after: int | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                **self.response_headers(request_id),
                "Content-Type": self.stream_content_type,
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)  # StreamResponse sends the headers right away
        if delay and not await self._stall_watching(request, delay):
            return response
        for index, event in enumerate(self.stream_events(body, outcome)):
            if cut_after is not None and index >= cut_after:
                _abort(request)
                return response
            await response.write(event)
        await response.write_eof()
        return response

    async def _stall_watching(self, request: web.Request, seconds: float) -> bool:
        """Sleep up to `seconds`, noticing within 10 ms if the client hangs up; False if it did."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                with self._lock:
                    self.client_gone_at.append(time.monotonic())
                return False
            await asyncio.sleep(0.01)
        return True

    async def _send_truncated(
        self, request: web.Request, payload: bytes, request_id: str, cut_after: int
    ) -> web.StreamResponse:
        # Declaring the full length and sending less makes the cut unambiguous to any client.
        response = web.StreamResponse(
            headers={
                **self.response_headers(request_id),
                "Content-Type": "application/json",
                "Content-Length": str(len(payload)),
            }
        )
        await response.prepare(request)
        if cut_after > 0:
            await response.write(payload[: len(payload) // 2])
        _abort(request)
        return response

    # ------------------------------------------------------------------------ server thread

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready, failure))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None
            ready.set()  # unblocks start() if setup failed before signalling

    async def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stopped = asyncio.Event()
        app = web.Application()
        app.add_routes(self.routes())
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE_S)
        try:
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", 0))
            except OSError:
                sock.close()
                raise
            self._port = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()
        except BaseException as exc:
            failure.append(exc)
            await runner.cleanup()
            ready.set()
            return
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()


def _abort(request: web.Request) -> None:
    """Drop the connection without a terminating chunk, like a crashed upstream or proxy."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def unix_time() -> int:
    return int(time.time())
