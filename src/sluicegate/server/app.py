"""The ASGI application: transport concerns around the pipeline, nothing else.

Per request: pick the few headers we use, set the request id, authenticate, read the body
within the size limit, run the route's pipeline, and render any GatewayError as the API's
error body. Nothing raises into a response that has already started; streams end with an
in-band error event instead (pipeline/chat.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
from collections.abc import Awaitable, Callable
from time import perf_counter

import orjson

from ..api.admin import admin, owns_admin_path
from ..api.admin.runtime import PREFIXES as RUNTIME_ADMIN_PREFIXES
from ..api.admin.runtime import runtime_admin
from ..api.anthropic.messages import count_tokens, messages
from ..api.openai.responses import create_response, response_by_id
from ..api.passthrough import PREFIX as PASSTHROUGH_PREFIX
from ..api.passthrough import error_renderer as passthrough_error_renderer
from ..api.passthrough import passthrough
from ..auth.principal import extract_key
from ..config import load_config
from ..config.schema import Config
from ..errors import (
    GatewayError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    render_anthropic,
    render_openai,
)
from ..pipeline.chat import chat_completions
from ..pipeline.completions import completions
from ..pipeline.context import RequestContext
from ..pipeline.embeddings import embeddings
from ..upstream.client import HttpTransport
from .http import (
    JSON_CT,
    ClientDisconnected,
    Message,
    Receive,
    Scope,
    Send,
    pick_headers,
    read_body,
    send_bytes,
)
from .lifecycle import Lifecycle, ShutdownHook, end_cut_request, refuse
from .runtime import Runtime
from .switches import Switches

log = logging.getLogger("sluicegate")

_REQUEST_ID_OK = re.compile(rb"^[\x21-\x7e]{1,128}$")
_LIVE_BODY = b'{"status":"ok"}'

# A model route's handler: the pipeline entry point, called directly (no wrapper per request).
Handler = Callable[[Runtime, RequestContext, bytes, Receive, Send], Awaitable[None]]
# Renders an error before the response started, in the route's API dialect.
ErrorRenderer = Callable[[GatewayError], bytes]

# path -> (method, handler, error renderer)
_MODEL_ROUTES: dict[str, tuple[bytes, Handler, ErrorRenderer]] = {
    "/v1/chat/completions": (b"POST", chat_completions, render_openai),
    "/chat/completions": (b"POST", chat_completions, render_openai),  # base URL configured without /v1
    "/v1/responses": (b"POST", create_response, render_openai),
    "/responses": (b"POST", create_response, render_openai),
    "/v1/messages": (b"POST", messages, render_anthropic),
    "/v1/messages/count_tokens": (b"POST", count_tokens, render_anthropic),
    "/v1/embeddings": (b"POST", embeddings, render_openai),
    "/embeddings": (b"POST", embeddings, render_openai),
    "/v1/completions": (b"POST", completions, render_openai),
    "/completions": (b"POST", completions, render_openai),
}


class Gateway:
    """The ASGI callable. One instance per worker process."""

    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path  # re-read on reload (server/reload.py); None = built-in defaults
        self.http = HttpTransport()
        self.runtime = Runtime(config, self.http)
        self.lifecycle = Lifecycle()  # drain state and shutdown hooks (server/lifecycle.py)
        self.switches = Switches()  # deployments disabled at run time (server/switches.py)
        self.switches.apply(self.runtime)
        # Soft-budget alerts still being sent (they need the database), then flush queued
        # ledger/log rows and close the database (shared by every reloaded Runtime).
        self.on_shutdown(self._close_accounting)
        self.on_shutdown(self._close_state)
        self.on_shutdown(self._close_router)
        self._counter = 0
        self._pid = f"{os.getpid():x}".encode()

    def on_shutdown(self, hook: ShutdownHook) -> None:
        """Register `async hook()` to run at shutdown after the last request (e.g. the ledger flush)."""
        self.lifecycle.on_shutdown(hook)

    async def _close_accounting(self) -> None:
        await self.runtime.accounting.close()

    async def _close_state(self) -> None:
        await self.runtime.state.close()

    async def _close_router(self) -> None:
        await self.runtime.router.aclose()  # Redis sync and active health checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _request_id(self, given: bytes | None) -> bytes:
        if given is not None and _REQUEST_ID_OK.match(given):
            return given
        # Unique per worker without a syscall: pid + counter; cheaper than uuid4 per request.
        self._counter += 1
        return b"sg-" + self._pid + b"-" + f"{self._counter:x}".encode()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = pick_headers(scope["headers"])
        ctx = RequestContext(
            request_id=self._request_id(headers.get(b"x-request-id")), started=perf_counter(), headers=headers
        )
        path: str = scope["path"]
        renderer: ErrorRenderer = render_openai
        rt = self.runtime  # this request's snapshot: a reload swaps self.runtime, not this
        try:
            if self.lifecycle.draining and path != "/health/live":
                await refuse(send, ctx.request_id, path)
                return
            route = _MODEL_ROUTES.get(path)
            if route is not None:
                method, handler, renderer = route
                if scope["method"].encode() != method:
                    raise MethodNotAllowedError(
                        f"{scope['method']} is not allowed on {path}; use {method.decode()}"
                    )
                ctx.principal = await rt.authenticator.resolve(_key(headers), scope.get("client"))
                if handler is not count_tokens:  # a local estimate: neither billed nor logged
                    ctx.endpoint = path
                    send = _recording(rt, ctx, send)
                raw = await read_body(receive, rt.max_body_bytes, headers.get(b"content-length"))
                await handler(rt, ctx, raw, receive, send)
                return
            if path.startswith(PASSTHROUGH_PREFIX):
                renderer = passthrough_error_renderer(path)
                ctx.endpoint = "/passthrough"
                send = _recording(rt, ctx, send)
                await passthrough(rt, ctx, scope, receive, send)
                return
            if path.startswith(RUNTIME_ADMIN_PREFIXES):  # before the table-driven /admin/ routes
                await runtime_admin(self, self.runtime, ctx, scope, headers, send)
                return
            if owns_admin_path(path):  # keys, teams, users, spend, logs, audit, openapi.json
                await admin(self.runtime, ctx, scope, headers, receive, send)
                return
            await self._small_routes(scope, ctx, headers, send)
        # How a call ended goes on the context before the answer is sent: the ledger and log rows
        # are recorded from it just before the last byte (`_recording`).
        except GatewayError as error:
            ctx.error_code = error.code or error.error_type
            if ctx.response_started:
                log.warning("error after response start", extra={"request_id": ctx.request_id.decode()})
                return
            ctx.status = error.http_status
            await _send_error(send, ctx, error, renderer)
        except ClientDisconnected:
            ctx.status, ctx.error_code = 499, "client_disconnected"
            return
        except asyncio.CancelledError:
            if not self.lifecycle.cutting:
                raise
            # Cancelled at the drain deadline (server/worker.py): tell the client, then end normally.
            ctx.cut, ctx.error_code = True, "shutting_down"
            if not ctx.response_started:
                ctx.status = 503
            await end_cut_request(send, ctx.request_id, path, ctx.response_started)
        except Exception:
            log.exception("unhandled error", extra={"request_id": ctx.request_id.decode()})
            ctx.error_code = "internal_error"
            if not ctx.response_started:
                ctx.status = 500
                await _send_error(send, ctx, GatewayError("internal error in the gateway"), renderer)
        finally:
            # Exactly once per model call, on every exit path above: rows (if the answer did not
            # already record them) and the limiter's settle.
            if ctx.endpoint is not None and ctx.principal is not None and not ctx.finished:
                await _finish(rt, ctx)

    async def _small_routes(
        self, scope: Scope, ctx: RequestContext, headers: dict[bytes, bytes], send: Send
    ) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        rt = self.runtime
        if path == "/health/live":
            await send_bytes(send, 200, _LIVE_BODY, [JSON_CT, (b"x-request-id", ctx.request_id)])
            return
        if path == "/health/ready":
            body = orjson.dumps({"status": "ready", "models": len(rt.groups)})
            await send_bytes(send, 200, body, [JSON_CT, (b"x-request-id", ctx.request_id)])
            return
        if path == "/v1/models" or path.startswith("/v1/models/"):
            if method != "GET":
                raise MethodNotAllowedError(f"{method} is not allowed on {path}; use GET")
            ctx.principal = await rt.authenticator.resolve(_key(headers), scope.get("client"))
            if path == "/v1/models":
                body = rt.models_list_body
            else:
                model_id = path[len("/v1/models/") :]
                found = rt.model_bodies.get(model_id)
                if found is None:
                    raise ModelNotFoundError(f"the model '{model_id}' does not exist", param="model")
                body = found
            await send_bytes(send, 200, body, [JSON_CT, (b"x-request-id", ctx.request_id)])
            return
        if path.startswith(("/v1/responses/", "/responses/")):  # GET/DELETE /v1/responses/{id}
            ctx.principal = await rt.authenticator.resolve(_key(headers), scope.get("client"))
            await response_by_id(rt, ctx, scope, send)
            return
        raise NotFoundError(f"no route for {method} {path}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.runtime.state.start()  # key-cache invalidation listener, ledger writer
                self.runtime.router.start()  # Redis-shared routing state, active health checks
                # What is loaded by now lives as long as the worker: move it out of the collector's
                # reach, or every full collection walks it all (tens of ms: the p99 under load).
                gc.collect()
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.lifecycle.run_hooks()
                await self.runtime.router.aclose()
                await self.http.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _recording(rt: Runtime, ctx: RequestContext, send: Send) -> Send:
    """`send`, but the call's ledger and log rows are recorded (journaled) just before its last byte:
    an answer the caller has received is always in the journal, whatever happens to the process."""

    async def send_recorded(message: Message) -> None:
        if (
            not ctx.recorded
            and ctx.principal is not None
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
        ):
            try:
                rt.accounting.record(ctx)
            except Exception:
                log.exception("accounting failed", extra={"request_id": ctx.request_id.decode()})
        await send(message)

    return send_recorded


async def _finish(rt: Runtime, ctx: RequestContext) -> None:
    try:
        await rt.accounting.finish(ctx)
    except Exception:
        # The reply is out: accounting trouble is logged, never turned into a second response.
        log.exception("accounting failed", extra={"request_id": ctx.request_id.decode()})


def _key(headers: dict[bytes, bytes]) -> str | None:
    return extract_key(headers.get(b"authorization"), headers.get(b"x-api-key"))


async def _send_error(
    send: Send, ctx: RequestContext, error: GatewayError, renderer: ErrorRenderer = render_openai
) -> None:
    headers = [JSON_CT, (b"x-request-id", ctx.request_id)]
    headers.extend((k.encode(), v.encode()) for k, v in error.headers.items())
    if ctx.deployment is not None:
        headers.append((b"x-sluicegate-deployment", ctx.deployment.label.encode()))
    if ctx.attempts:
        headers.append((b"x-sluicegate-attempts", str(ctx.attempts).encode()))
    await send_bytes(send, error.http_status, renderer(error), headers)


def create_app() -> Gateway:
    """uvicorn factory: each worker loads the config named by the parent (`SLUICEGATE_CONFIG`)."""
    from ..observability.logging import configure_logging

    configure_logging()
    path = os.environ.get("SLUICEGATE_CONFIG") or None
    return Gateway(load_config(path, use_search=False), path)
