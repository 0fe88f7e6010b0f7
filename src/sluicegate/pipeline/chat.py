"""The Chat Completions path, top to bottom: validate -> resolve -> dispatch -> respond.

Non-streamed calls read the provider's reply whole and send it on. Streamed calls hold the
response headers until the provider's first event has been translated: until then every
failure is an ordinary HTTP error (and, from issue #5 on, a retry on another deployment);
after it, a failure becomes one in-band error event and the stream ends without `[DONE]`.
A client that disconnects cancels the upstream request at once.

`run_chat` serves every chat-shaped surface: `/v1/chat/completions` with the OpenAI egress
(bytes pass through), `/v1/messages` and `/v1/responses` with their own (pipeline/egress.py).
Later steps of the SPEC pipeline (limits, cache, retries, ledger) slot in between these.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter

from ..errors import GatewayError, UpstreamTimeoutError
from ..providers.base import CHAT, STREAM, StreamTranslator
from ..server.http import JSON_CT, SSE_HEADERS, Receive, Send, send_bytes
from ..server.runtime import Runtime
from ..types import ChatRequest, UpstreamRequest
from ..upstream.client import UpstreamStream
from ..upstream.sse import SSEEvent
from .context import RequestContext
from .dispatch import fetch, open_upstream, raise_for_status, resolve
from .egress import OPENAI, Egress
from .validate import chat_request, parse_json_object

log = logging.getLogger("sluicegate")


async def chat_completions(
    rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send
) -> None:
    await run_chat(rt, ctx, chat_request(parse_json_object(raw)), receive, send, OPENAI)


async def run_chat(
    rt: Runtime, ctx: RequestContext, request: ChatRequest, receive: Receive, send: Send, egress: Egress
) -> None:
    """One chat call on any surface: `egress` presents the OpenAI-dialect result to the caller."""
    deployment = resolve(rt, ctx, request.model, STREAM if request.stream else CHAT)
    upstream_request = deployment.adapter.build_request(request)
    if request.stream:
        await _stream(rt, ctx, request, upstream_request, receive, send, egress)
    else:
        await _complete(ctx, request, upstream_request, send, egress)


async def _complete(
    ctx: RequestContext, request: ChatRequest, upstream_request: UpstreamRequest, send: Send, egress: Egress
) -> None:
    deployment = ctx.deployment
    assert deployment is not None
    reply = await fetch(ctx, upstream_request)
    response = deployment.adapter.parse_response(request, reply)
    ctx.usage = response.usage
    content = egress.complete(request, response)
    headers = ctx.model_headers()
    headers.append(JSON_CT)
    ctx.response_started = True
    await send_bytes(send, 200, content, headers)


class _DisconnectWatcher:
    """Cancels the streaming task when the client goes away, so the upstream call stops at once."""

    __slots__ = ("_receive", "_target", "_task", "active", "fired")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._target = asyncio.current_task()
        self.active = True
        self.fired = False
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
        # `active` is cleared just before the final send: uvicorn then reports "disconnect" too.
        if self.active and self._target is not None:
            self.fired = True
            self._target.cancel()

    def stop(self) -> None:
        self.active = False
        self._task.cancel()


def _translate(translator: StreamTranslator, events: list[SSEEvent]) -> list[bytes]:
    frames: list[bytes] = []
    for event in events:
        frames.extend(translator.feed(event))
    return frames


async def _stream(
    rt: Runtime,
    ctx: RequestContext,
    request: ChatRequest,
    upstream_request: UpstreamRequest,
    receive: Receive,
    send: Send,
    egress: Egress,
) -> None:
    deployment = ctx.deployment
    assert deployment is not None
    ttft_s = min(rt.config.router.ttft_timeout_s, deployment.timeout_s)
    began = perf_counter()
    watcher = _DisconnectWatcher(receive)
    upstream: UpstreamStream | None = None
    translator: StreamTranslator | None = None
    try:
        # Phase 1 — before the commit point: failures are plain HTTP errors.
        try:
            async with asyncio.timeout(ttft_s):
                upstream = await open_upstream(ctx, upstream_request, stream=True)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"the provider did not answer within {ttft_s:g} s") from exc
        if upstream.status >= 400:
            await raise_for_status(ctx, upstream)
        translator = deployment.adapter.stream_translator(request)
        encoder = egress.stream(request)
        decoder = deployment.adapter.stream_decoder()
        chunks = upstream.iter_chunks().__aiter__()
        first: list[bytes] = []
        try:
            async with asyncio.timeout(max(0.001, ttft_s - (perf_counter() - began))):
                while not first:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        first.extend(_translate(translator, decoder.close()))
                        first.extend(translator.finish())  # raises if the provider sent nothing usable
                        break
                    first.extend(_translate(translator, decoder.feed(chunk)))
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"no first token from the provider within {ttft_s:g} s") from exc
        ctx.upstream_s = perf_counter() - began
        headers = ctx.model_headers()
        headers.extend(SSE_HEADERS)
        ctx.response_started = True
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoder.encode(first), "more_body": True})
        if translator.finished:
            watcher.active = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # Phase 2 — committed: forward every event; a failure becomes an in-band error event.
        try:
            async for chunk in chunks:
                frames = _translate(translator, decoder.feed(chunk))
                if frames:
                    body = encoder.encode(frames)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            closing = _translate(translator, decoder.close())
            closing.extend(translator.finish())
            tail = encoder.encode(closing) if closing else b""
        except GatewayError as error:
            tail = encoder.error(error)
        except Exception:
            # A bug must still end the stream visibly, never as a silent truncation.
            log.exception("stream failed after the first byte", extra={"request_id": ctx.request_id.decode()})
            tail = encoder.error(GatewayError("internal error in the gateway while streaming"))
        watcher.active = False
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    except asyncio.CancelledError:
        if not watcher.fired:
            raise
        # The client left: the upstream connection is closed below and whatever usage the
        # stream reported so far stays on the context for billing.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    finally:
        watcher.stop()
        if upstream is not None:
            upstream.close()
        if translator is not None:
            ctx.usage = translator.usage
