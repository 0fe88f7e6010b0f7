"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API over any model.

A Messages call is translated to the internal dialect (translate.py) and run through the same
chat pipeline as `/v1/chat/completions`, with `ANTHROPIC` as its egress: replies, streams and
errors leave in Anthropic's shapes, so the official `anthropic` SDK (and Claude Code) works
unchanged whichever provider serves the model. `count_tokens` asks Anthropic when the model is
served by the `anthropic` provider and otherwise answers with an estimate.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import GatewayError, UpstreamProtocolError, render_anthropic
from ...pipeline.chat import run_chat
from ...pipeline.context import RequestContext
from ...pipeline.dispatch import fetch, resolve
from ...pipeline.egress import StreamEncoder
from ...pipeline.validate import parse_json_object
from ...providers.anthropic import AnthropicAdapter
from ...providers.base import CHAT
from ...server.http import JSON_CT, Receive, Send, send_bytes
from ...server.runtime import Runtime
from ...types import ChatRequest, ChatResponse, UpstreamRequest
from . import translate
from .translate import Backend

# Providers whose reasoning models refuse `max_tokens` (they want `max_completion_tokens`).
_COMPLETION_TOKENS_PROVIDERS = frozenset({"openai", "azure"})
_PLAIN = Backend()
_ANTHROPIC_BACKEND = Backend(keep_cache_control=True)
_OPENAI_BACKEND = Backend(token_field="max_completion_tokens")


class AnthropicEgress:
    """Presents the pipeline's OpenAI-dialect results as Anthropic Messages replies, events and errors."""

    __slots__ = ()

    def render_error(self, error: GatewayError) -> bytes:
        return render_anthropic(error)

    def complete(self, request: ChatRequest, response: ChatResponse) -> bytes:
        try:
            completion: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not a chat completion") from exc
        return orjson.dumps(translate.to_message(completion, request.model, response.usage))

    def stream(self, request: ChatRequest) -> StreamEncoder:
        return translate.MessagesStream(request.model)


ANTHROPIC = AnthropicEgress()


def backend_of(rt: Runtime, model: str) -> Backend:
    """What every deployment of `model`'s group accepts (the body is built before one is chosen)."""
    group = rt.groups.get(model)
    if group is None:
        return _PLAIN  # resolve() answers 404 in a moment
    providers = {deployment.entry.provider for deployment in group.deployments}
    if providers == {"anthropic"}:
        return _ANTHROPIC_BACKEND
    if providers <= _COMPLETION_TOKENS_PROVIDERS:
        return _OPENAI_BACKEND
    return _PLAIN


async def messages(rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send) -> None:
    body = parse_json_object(raw)
    backend = backend_of(rt, translate.check_model(body))
    await run_chat(rt, ctx, translate.to_chat_request(body, backend), receive, send, ANTHROPIC)


async def count_tokens(rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send) -> None:
    body = parse_json_object(raw)
    model = translate.check_model(body)
    deployment = resolve(rt, ctx, model, CHAT)
    adapter = deployment.adapter
    # The provider name too: Claude on other clouds (Vertex, Bedrock) has other counting endpoints.
    if deployment.entry.provider == "anthropic" and isinstance(adapter, AnthropicAdapter):
        # Anthropic counts exactly; it validates the request itself, server tools and PDFs included.
        forwarded = {key: body[key] for key in translate.COUNT_TOKENS_KEYS if key in body}
        forwarded["model"] = adapter.model_id
        upstream = UpstreamRequest(
            "POST", f"{adapter.url}/count_tokens", adapter.headers, orjson.dumps(forwarded)
        )
        reply = await fetch(ctx, upstream)
        try:
            counted = orjson.loads(reply.body).get("input_tokens")
        except (orjson.JSONDecodeError, AttributeError):
            counted = None
        if not isinstance(counted, int) or isinstance(counted, bool):
            raise UpstreamProtocolError('the provider\'s token count is not {"input_tokens": <integer>}')
        tokens, method = counted, b"provider"
    else:
        translate.check_count_tokens(body)
        tokens, method = translate.estimate_input_tokens(body), b"estimate"
    headers = ctx.model_headers()
    headers.append(JSON_CT)
    headers.append((b"x-sluicegate-token-count", method))
    ctx.response_started = True
    await send_bytes(send, 200, orjson.dumps({"input_tokens": tokens}), headers)
