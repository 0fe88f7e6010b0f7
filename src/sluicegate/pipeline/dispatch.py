"""The steps every model route shares: resolve the model to a deployment, sign, send, read.

Chat, embeddings, Messages and Responses all call these, so routing, capability checks and
error mapping behave the same on every surface. (Retries and fallbacks, issue #5, wrap `fetch`
and the stream opening here.)
"""

from __future__ import annotations

from time import perf_counter

from ..errors import InvalidRequestError, ModelNotFoundError
from ..routing.deployment import Deployment
from ..server.runtime import Runtime
from ..types import UpstreamReply, UpstreamRequest
from ..upstream.client import UpstreamStream
from .context import RequestContext


def resolve(rt: Runtime, ctx: RequestContext, model: str, capability: str) -> Deployment:
    """The deployment to call for `model`, after the caller's allowlist and the capability check."""
    ctx.model = model
    group = rt.groups.get(model)
    if group is None:
        raise ModelNotFoundError(f"the model '{model}' does not exist", param="model")
    assert ctx.principal is not None
    ctx.principal.check_model(model)
    deployment = group.choose()
    ctx.deployment = deployment
    ctx.attempts = 1
    if capability not in deployment.adapter.capabilities:
        raise InvalidRequestError(
            f"model '{model}' (provider {deployment.entry.provider}) does not support {capability}",
            param="model",
            code="unsupported_operation",
        )
    return deployment


async def prepare(deployment: Deployment, request: UpstreamRequest) -> UpstreamRequest:
    """Per-attempt credentials (SigV4, OAuth tokens); free for adapters that need none."""
    adapter = deployment.adapter
    if adapter.needs_signing:
        return await adapter.sign(request, deployment.transport)
    return request


async def open_upstream(ctx: RequestContext, request: UpstreamRequest, *, stream: bool) -> UpstreamStream:
    """Send the request; returns at the provider's status line. The transport enforces the deadlines."""
    deployment = ctx.deployment
    assert deployment is not None
    request = await prepare(deployment, request)
    return await deployment.transport.open(
        request,
        timeout_s=deployment.timeout_s,
        connect_timeout_s=deployment.connect_timeout_s,
        stream=stream,
    )


async def raise_for_status(ctx: RequestContext, stream: UpstreamStream) -> None:
    body = await stream.read()
    assert ctx.deployment is not None
    raise ctx.deployment.adapter.map_error(UpstreamReply(stream.status, stream.headers, body))


async def fetch(ctx: RequestContext, request: UpstreamRequest) -> UpstreamReply:
    """A complete (non-streamed) exchange: the provider's 2xx reply, or its error raised as ours."""
    began = perf_counter()
    try:
        # No asyncio.timeout here: the transport's own deadline (aiohttp's `total`) bounds open + read,
        # which saves a timer handle per call on the hottest path.
        stream = await open_upstream(ctx, request, stream=False)
        if stream.status >= 400:
            await raise_for_status(ctx, stream)
        body = await stream.read()
    finally:
        ctx.upstream_s = perf_counter() - began
    return UpstreamReply(stream.status, stream.headers, body)
