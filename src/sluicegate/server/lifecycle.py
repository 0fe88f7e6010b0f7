"""Drain and shutdown of one worker: the draining flag, the cut at the drain deadline, shutdown hooks.

Timeline after SIGTERM (server/worker.py drives it, docs/operations.md explains it):

1. `begin_drain` — `/health/ready` answers 503 and any new request (a keep-alive connection's
   next call) gets 503 `shutting_down` with `connection: close`; the listener closes.
2. In-flight calls run to completion until `cut_at` (the deadline minus a reserve for the hooks).
3. `cutting` — calls still running are cancelled; the request path turns each into an error the
   client can see: a 503 if nothing was sent yet, else the route's in-band stream error event.
4. Shutdown hooks run in registration order (the ledger flush goes here), bounded by the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import orjson

from ..errors import GatewayError, ShuttingDownError, render_anthropic, render_openai
from .http import JSON_CT, Send, send_bytes

log = logging.getLogger("sluicegate")

ShutdownHook = Callable[[], Awaitable[None]]

# Hooks still get this long when the gateway stops without a drain (e.g. lifespan in tests).
DEFAULT_HOOK_TIMEOUT_S = 5.0
_DRAINING_READY_BODY = b'{"status":"draining"}'


def hook_reserve_s(drain_timeout_s: float) -> float:
    """How long before the deadline in-flight calls are cut, so the shutdown hooks still fit."""
    return min(2.0, drain_timeout_s / 5)


class Lifecycle:
    """Drain state of one worker plus its shutdown hooks; one per Gateway, reloads keep it."""

    __slots__ = ("_hooks", "cutting", "deadline", "draining")

    def __init__(self) -> None:
        self.draining = False
        self.cutting = False
        self.deadline: float | None = None  # time.monotonic() by which the worker must be gone
        self._hooks: list[ShutdownHook] = []

    def on_shutdown(self, hook: ShutdownHook) -> None:
        """Run `hook` once at shutdown, after the last request, before the HTTP client closes."""
        self._hooks.append(hook)

    def begin_drain(self, timeout_s: float) -> None:
        # Safe from a signal handler: plain attribute stores, no awaits, idempotent.
        if not self.draining:
            self.draining = True
            self.deadline = time.monotonic() + timeout_s

    def remaining_s(self) -> float:
        if self.deadline is None:
            return DEFAULT_HOOK_TIMEOUT_S
        return max(0.0, self.deadline - time.monotonic())

    async def run_hooks(self) -> None:
        """Each hook in order; a failing or slow hook is logged and never stops the next one."""
        for hook in self._hooks:
            # At least a moment even past the deadline: a flush that cannot start is a lost flush.
            budget = max(0.2, self.remaining_s())
            try:
                await asyncio.wait_for(hook(), budget)
            except TimeoutError:
                log.error("shutdown hook %s did not finish within %.1f s", _name(hook), budget)
            except Exception:
                log.exception("shutdown hook %s failed", _name(hook))


def _name(hook: ShutdownHook) -> str:
    return getattr(hook, "__qualname__", repr(hook))


def _renderer(path: str) -> Callable[[GatewayError], bytes]:
    if path.startswith("/v1/messages"):
        return render_anthropic
    if path.startswith("/passthrough/"):
        from ..api.passthrough import error_renderer

        return error_renderer(path)
    return render_openai


async def refuse(send: Send, request_id: bytes, path: str) -> None:
    """The answer to a request that arrives while draining: 503 and close the connection."""
    headers = [JSON_CT, (b"x-request-id", request_id), (b"connection", b"close")]
    if path == "/health/ready":
        await send_bytes(send, 503, _DRAINING_READY_BODY, headers)
        return
    error = ShuttingDownError("the gateway is shutting down; send the request again")
    await send_bytes(send, 503, _renderer(path)(error), headers)


def in_band_error(path: str, error: GatewayError) -> bytes:
    """The stream event that ends a started stream on `path`, in that route's dialect (SPEC §6)."""
    if path.startswith("/v1/messages"):
        return b"event: error\ndata: " + orjson.dumps(error.to_anthropic()) + b"\n\n"
    if path in ("/v1/responses", "/responses"):
        # The Responses event also carries a `sequence_number`; the app layer does not know the
        # stream's counter, so it is left out (the SDK raises on `event: error` without reading it).
        body = error.to_openai()["error"]
        payload = {"type": "error", "code": error.code, "message": error.message, "param": None}
        payload["error"] = body
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    if path.startswith("/passthrough/"):
        return b""  # the provider's own stream dialect is unknown here: the stream just ends
    return b"data: " + orjson.dumps(error.to_openai()) + b"\n\n"


async def end_cut_request(send: Send, request_id: bytes, path: str, response_started: bool) -> None:
    """Finish a call cancelled at the drain deadline so the client sees why it ended."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()  # the cut was ours: this task finishes normally
    error = ShuttingDownError("the gateway shut down before the call finished (drain timeout)")
    # The client may be gone or the response already complete: nothing left to tell anyone then.
    with contextlib.suppress(Exception):
        if not response_started:
            headers = [JSON_CT, (b"x-request-id", request_id), (b"connection", b"close")]
            await send_bytes(send, 503, _renderer(path)(error), headers)
        else:
            await send({"type": "http.response.body", "body": in_band_error(path, error), "more_body": False})
