"""The Chat Completions path, top to bottom: validate -> dispatch (route, retry, fall back) -> respond.

Non-streamed calls read the provider's reply whole and send it on. Streamed calls hold the
response headers until the provider's first event has been translated: until then every
failure is an ordinary HTTP error, or a retry on another deployment (pipeline/dispatch.py);
a stream whose first token does not arrive within `router.ttft_timeout_s` is abandoned and
tried elsewhere, invisibly to the client. After the first byte nothing is retried: a failure
becomes one in-band error event and the stream ends without `[DONE]`:

    OpenAI routes:    data: {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
    /v1/messages:     event: error / data: {"type": "error", "error": {"type": ..., "message": ...}}
    /v1/responses:    event: error / data: {"type": "error", "code", "message", "param",
                      "sequence_number", "error": {...}}

A client that disconnects cancels the upstream request at once; the usage streamed until then
stays on `ctx.usage` to be billed.

`run_chat` serves every chat-shaped surface: `/v1/chat/completions` with the OpenAI egress
(bytes pass through), `/v1/messages` and `/v1/responses` with their own (pipeline/egress.py).
Later steps of the SPEC pipeline (limits, cache, ledger) slot in around `dispatch`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import perf_counter

from ..errors import GatewayError, UpstreamTimeoutError
from ..providers.base import CHAT, STREAM, StreamTranslator
from ..routing.deployment import Deployment
from ..server.http import JSON_CT, SSE_HEADERS, DisconnectWatcher, Receive, Send, send_bytes
from ..server.runtime import Runtime
from ..types import ChatRequest, ChatResponse, UpstreamRequest
from ..upstream.client import UpstreamStream
from ..upstream.sse import SSEEvent
from .context import RequestContext
from .dispatch import attempt_timeout, dispatch, fetch, open_upstream, raise_for_status
from .egress import OPENAI, Egress
from .validate import chat_request, parse_json_object

log = logging.getLogger("sluicegate")

# Builds the provider request for one deployment (the default: the adapter's chat request).
Build = Callable[[Deployment], UpstreamRequest]


async def chat_completions(
    rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send
) -> None:
    await run_chat(rt, ctx, chat_request(parse_json_object(raw)), receive, send, OPENAI)


async def run_chat(
    rt: Runtime, ctx: RequestContext, request: ChatRequest, receive: Receive, send: Send, egress: Egress
) -> None:
    """One chat call on any surface: `egress` presents the OpenAI-dialect result to the caller."""
    if request.stream:
        await stream_chat(rt, ctx, request, receive, send, egress)
    else:
        await complete_chat(rt, ctx, request, send, egress)


def _content_filtered(response: ChatResponse) -> bool:
    return response.finish_reason == "content_filter"


async def complete_chat(
    rt: Runtime,
    ctx: RequestContext,
    request: ChatRequest,
    send: Send,
    egress: Egress,
    *,
    capability: str = CHAT,
    build: Build | None = None,
) -> None:
    async def attempt(deployment: Deployment, limit_s: float) -> ChatResponse:
        upstream_request = build(deployment) if build else deployment.adapter.build_request(request)
        reply = await fetch(ctx, upstream_request, attempt_timeout(deployment, limit_s))
        return deployment.adapter.parse_response(request, reply)

    response = await dispatch(
        rt,
        ctx,
        request.model,
        capability,
        attempt,
        body=request.body,
        controls=request.controls,
        refused=_content_filtered,
    )
    ctx.usage = response.usage
    content = egress.complete(request, response)
    if ctx.principal is not None and ctx.principal.log_bodies:
        ctx.response_body = content
    headers = ctx.model_headers()
    headers.append(JSON_CT)
    ctx.response_started = True
    await send_bytes(send, 200, content, headers)


def _translate(translator: StreamTranslator, events: list[SSEEvent]) -> list[bytes]:
    frames: list[bytes] = []
    for event in events:
        frames.extend(translator.feed(event))
    return frames


async def stream_chat(
    rt: Runtime,
    ctx: RequestContext,
    request: ChatRequest,
    receive: Receive,
    send: Send,
    egress: Egress,
    *,
    capability: str = STREAM,
    build: Build | None = None,
) -> None:
    # One watcher for every attempt: a client leaving during a retry's backoff cancels it too.
    watcher = DisconnectWatcher(receive)
    ctx.stream = True

    async def attempt(deployment: Deployment, limit_s: float) -> None:
        upstream_request = build(deployment) if build else deployment.adapter.build_request(request)
        await _stream_attempt(rt, ctx, request, deployment, upstream_request, limit_s, send, egress, watcher)

    try:
        await dispatch(
            rt,
            ctx,
            request.model,
            capability,
            attempt,
            body=request.body,
            controls=request.controls,
            streaming=True,
        )
    except asyncio.CancelledError:
        if not watcher.fired:
            raise
        # The client left: the upstream connection is already closed and whatever usage the
        # stream reported so far stays on the context for billing.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    finally:
        watcher.stop()


async def _stream_attempt(
    rt: Runtime,
    ctx: RequestContext,
    request: ChatRequest,
    deployment: Deployment,
    upstream_request: UpstreamRequest,
    limit_s: float,
    send: Send,
    egress: Egress,
    watcher: DisconnectWatcher,
) -> None:
    """One streamed attempt: raises before the first token (the loop may retry); ends the stream after."""
    # The first-token deadline, never past the request's total timeout.
    first_by = min(rt.config.router.ttft_timeout_s, limit_s)
    began = perf_counter()
    upstream: UpstreamStream | None = None
    translator: StreamTranslator | None = None
    committed = False
    try:
        # Phase 1 — before the commit point: failures are plain HTTP errors, or a retry elsewhere.
        try:
            async with asyncio.timeout(first_by):
                upstream = await open_upstream(ctx, upstream_request, stream=True)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"the provider did not answer within {first_by:g} s") from exc
        if upstream.status >= 400:
            await raise_for_status(ctx, upstream)
        translator = deployment.adapter.stream_translator(request)
        encoder = egress.stream(request)
        decoder = deployment.adapter.stream_decoder()
        chunks = upstream.iter_chunks().__aiter__()
        first: list[bytes] = []
        try:
            async with asyncio.timeout(max(0.001, first_by - (perf_counter() - began))):
                while not first:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        first.extend(_translate(translator, decoder.close()))
                        first.extend(translator.finish())  # raises if the provider sent nothing usable
                        break
                    first.extend(_translate(translator, decoder.feed(chunk)))
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"no first token from the provider within {first_by:g} s") from exc
        ctx.ttft_s = perf_counter() - began
        headers = ctx.model_headers()
        headers.extend(SSE_HEADERS)
        ctx.upstream_s += ctx.ttft_s
        ctx.response_started = committed = True
        # What reaches the client, by reference: counted for billing if the provider reports no usage.
        ctx.frames = sent = first
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoder.encode(first), "more_body": True})
        if translator.finished:
            watcher.active = False
            ctx.usage = translator.usage  # before the last byte: the call is recorded as it is sent
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # Phase 2 — committed: forward every event; a failure becomes an in-band error event.
        try:
            async for chunk in chunks:
                frames = _translate(translator, decoder.feed(chunk))
                if frames:
                    sent += frames
                    body = encoder.encode(frames)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            closing = _translate(translator, decoder.close())
            closing.extend(translator.finish())
            sent += closing
            tail = encoder.encode(closing) if closing else b""
        except GatewayError as error:
            ctx.stream_error = error
            tail = encoder.error(error)
        except Exception:
            # A bug must still end the stream visibly, never as a silent truncation.
            log.exception("stream failed after the first byte", extra={"request_id": ctx.request_id.decode()})
            ctx.stream_error = GatewayError("internal error in the gateway while streaming")
            tail = encoder.error(ctx.stream_error)
        watcher.active = False
        ctx.usage = translator.usage  # before the last byte: the call is recorded as it is sent
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        if not committed:
            ctx.upstream_s += perf_counter() - began
        if upstream is not None:
            upstream.close()
        if committed and translator is not None:
            # Only the attempt that reached the client is billed: what it streamed, even if cut.
            ctx.usage = translator.usage
