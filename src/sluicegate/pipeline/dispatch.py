"""Dispatch: every model route's calls go through `dispatch`, the retry and fallback loop.

`dispatch(rt, ctx, model, capability, call)` runs `call(deployment, limit_s)` — one attempt: build
the provider request, send, read — on a deployment of the model's group, and on failure decides
what next (routing/ holds the policies; this module is the loop that applies them):

    for each group (the model's, then its fallbacks in order):
        up to 1 + retries attempts, each on the deployment the group chooses
        (an untried one first; the same one again only after a backoff and within the retry budget)
        retryable failure (connect, timeout, 408/409/429/5xx) -> record it (ejection), next attempt
        content-filter refusal       -> the group's content_policy_fallbacks
        context window exceeded      -> the group's context_window_fallbacks
        any other error              -> raised to the client as it is
    all exhausted -> the last error (or the total timeout as a 504)

The total timeout (`router.timeout_s`, or `x-sluicegate-timeout-s`) covers every attempt and wait
until the response is committed: the whole call for a complete reply, the first token for a
stream. Once a stream's first byte reached the client nothing is retried: `call` then ends the
stream itself (an in-band error event on failure, noted in `ctx.stream_error`). Each attempt is
appended to `ctx.attempt_log` for the request log; `ctx.attempts` feeds `x-sluicegate-attempts`.

Admission (limits, budgets: pipeline/accounting.py) runs here once the model is known, once per
call whatever the number of attempts; settle and the ledger run after the handler returns
(server/app.py), from `ctx.usage`: the usage of the attempt that answered (for a stream, what was
streamed before any failure).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from time import monotonic, perf_counter
from typing import Any, TypeVar

from ..errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotAllowedError,
    ModelNotFoundError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from ..providers.base import EMBEDDINGS
from ..routing.controls import read_controls
from ..routing.deployment import Deployment
from ..routing.fallbacks import estimate_tokens, is_content_filter, is_context_overflow
from ..routing.priority import NORMAL, PRIORITIES
from ..routing.retry import is_retryable, retry_delay_s
from ..routing.router import ModelGroup, Router
from ..server.runtime import Runtime
from ..types import UpstreamReply, UpstreamRequest
from ..upstream.client import UpstreamStream
from .context import Attempt, RequestContext

T = TypeVar("T")
# One attempt on a deployment; `limit_s` is the time left in the request's total timeout.
Call = Callable[[Deployment, float], Awaitable[T]]


def group_for(rt: Runtime, ctx: RequestContext, model: str) -> ModelGroup:
    """The model's group, after the caller's allowlist (404 unknown, 403 not allowed)."""
    ctx.model = model
    group = rt.groups.get(model)
    if group is None:
        raise ModelNotFoundError(f"the model '{model}' does not exist", param="model")
    assert ctx.principal is not None
    ctx.principal.check_model(model)
    return group


def _unsupported(group: ModelGroup, capability: str) -> InvalidRequestError:
    what = capability.rpartition(":")[2]
    return InvalidRequestError(
        f"model '{group.name}' (provider {group.owned_by}) does not support {what}",
        param="model",
        code="unsupported_operation",
    )


def resolve(rt: Runtime, ctx: RequestContext, model: str, capability: str) -> Deployment:
    """One deployment for `model`, for calls that are not retried (token counting)."""
    group = group_for(rt, ctx, model)
    deployment = group.choose(capability)
    if deployment is None:
        raise _unsupported(group, capability)
    ctx.deployment = deployment
    ctx.attempts = 1
    return deployment


async def prepare(deployment: Deployment, request: UpstreamRequest) -> UpstreamRequest:
    """Per-attempt credentials (SigV4, OAuth tokens); free for adapters that need none."""
    adapter = deployment.adapter
    if adapter.needs_signing:
        return await adapter.sign(request, deployment.transport)
    return request


async def open_upstream(
    ctx: RequestContext, request: UpstreamRequest, *, stream: bool, timeout_s: float | None = None
) -> UpstreamStream:
    """Send the request; returns at the provider's status line. The transport enforces the deadlines.

    For a complete reply `timeout_s` bounds the whole exchange; for a stream, each silence (the
    stream idle timeout).
    """
    deployment = ctx.deployment
    assert deployment is not None
    request = await prepare(deployment, request)
    if timeout_s is None:
        timeout_s = deployment.stream_idle_s if stream else deployment.timeout_s
    return await deployment.transport.open(
        request,
        timeout_s=timeout_s,
        connect_timeout_s=deployment.connect_timeout_s,
        stream=stream,
    )


async def raise_for_status(ctx: RequestContext, stream: UpstreamStream) -> None:
    body = await stream.read()
    assert ctx.deployment is not None
    raise ctx.deployment.adapter.map_error(UpstreamReply(stream.status, stream.headers, body))


async def fetch(
    ctx: RequestContext, request: UpstreamRequest, timeout_s: float | None = None
) -> UpstreamReply:
    """A complete (non-streamed) exchange: the provider's 2xx reply, or its error raised as ours."""
    began = perf_counter()
    try:
        # No asyncio.timeout here: the transport's own deadline (aiohttp's `total`) bounds open + read,
        # which saves a timer handle per call on the hottest path.
        stream = await open_upstream(ctx, request, stream=False, timeout_s=timeout_s)
        if stream.status >= 400:
            await raise_for_status(ctx, stream)
        body = await stream.read()
    finally:
        ctx.upstream_s += perf_counter() - began  # retries add up: overhead = total - upstream
    return UpstreamReply(stream.status, stream.headers, body)


def attempt_timeout(deployment: Deployment, limit_s: float) -> float:
    """The transport deadline of a complete call: the deployment's own, cut to what is left.

    Rounded up (0.1 s steps, 1 s above 10 s) so the transport's cache of timeout objects stays small.
    """
    if limit_s >= deployment.timeout_s:
        return deployment.timeout_s
    step = 0.1 if limit_s < 10 else 1.0
    return max(step, math.ceil(limit_s / step) * step)


# --------------------------------------------------------------------------- the loop


class _Chain:
    """The groups still to try after the current one; built only when a first fallback is needed."""

    __slots__ = ("_principal", "_queue", "_router", "_visited")

    def __init__(self, router: Router, ctx: RequestContext, primary: ModelGroup, requested: Any) -> None:
        self._router = router
        self._principal = ctx.principal
        configured = router.config.fallbacks.get(primary.name, ())
        # The request's own list replaces the configured one (an empty list: no fallbacks).
        self._queue = list(requested if requested is not None else configured)
        self._visited = [primary.name]

    def redirect(self, targets: list[str]) -> None:
        """Continue with `targets` instead (content-policy or context-window fallbacks)."""
        self._queue = list(targets)

    def next(self) -> ModelGroup | None:
        while self._queue:
            name = self._queue.pop(0)
            group = self._router.groups.get(name)
            if group is None or name in self._visited:
                continue
            self._visited.append(name)
            if self._principal is not None:
                try:
                    self._principal.check_model(name)
                except ModelNotAllowedError:
                    continue  # a configured fallback this key may not use is skipped
            return group
        return None


def _check_requested(rt: Runtime, ctx: RequestContext, names: tuple[str, ...]) -> None:
    """Fallbacks named by the request must exist and be allowed for the key (404 / 403 otherwise)."""
    for name in names:
        if name not in rt.groups:
            raise ModelNotFoundError(
                f"the fallback model '{name}' does not exist", param="x-sluicegate-fallbacks"
            )
        assert ctx.principal is not None
        ctx.principal.check_model(name)


def _priority(ctx: RequestContext, requested: int | None) -> int:
    if requested is not None:
        return requested
    # The key's default (admin API `priority`), else normal.
    default = ctx.principal.priority if ctx.principal is not None else None
    return PRIORITIES.get(default, NORMAL) if isinstance(default, str) else NORMAL


def _log(
    ctx: RequestContext, d: Deployment, group: ModelGroup, outcome: str, status: int | None, s: float
) -> None:
    entry = Attempt(d.label, group.name, outcome, status, s)
    if ctx.attempt_log is None:
        ctx.attempt_log = [entry]
    else:
        ctx.attempt_log.append(entry)


def _status(error: BaseException) -> int | None:
    return error.upstream_status if isinstance(error, UpstreamStatusError) else None


def _out_of_time(total_s: float, error: GatewayError | None) -> GatewayError:
    why = f"; last error: {error.message}" if error is not None else ""
    return UpstreamTimeoutError(f"no deployment answered within the total timeout of {total_s:g} s{why}")


async def dispatch(
    rt: Runtime,
    ctx: RequestContext,
    model: str,
    capability: str,
    call: Call[T],
    *,
    body: dict[str, Any] | None = None,
    controls: Any = None,
    streaming: bool = False,
    refused: Callable[[T], bool] | None = None,
) -> T:
    """Run `call` on the model's deployments and fallbacks until one answers (see the module doc).

    `body` is the request body (for the context-window estimate), `controls` the caller's
    `sluicegate` object, `refused(result)` tells a content-filtered complete reply.
    """
    router = rt.router
    if not router.started:
        router.start()
    primary = group_for(rt, ctx, model)
    ctl = read_controls(ctx.headers, controls)
    if ctl.fallbacks:
        _check_requested(rt, ctx, ctl.fallbacks)
    # Limits and budgets, once per call whatever the attempts (pipeline/accounting.py).
    await rt.accounting.admit(ctx, primary.name, body, output=capability != EMBEDDINGS)
    rc = router.config
    total_s = rc.timeout_s if ctl.timeout_s is None else ctl.timeout_s
    retries = rc.retries if ctl.retries is None else ctl.retries
    deadline = ctx.started + total_s
    budget = router.budget
    budget.requests += 1
    try:
        chain: _Chain | None = None
        error: GatewayError | None = None
        refusal: Any = None  # a content-filtered reply, returned if no content-policy fallback does better
        prompt_tokens = -1
        group: ModelGroup | None = primary
        while group is not None:
            targets: list[str] | None = None
            if not group.capable(capability):
                if group is primary:
                    raise _unsupported(group, capability)
            elif (
                group.context_window is not None
                and body is not None
                and (bigger := rc.context_window_fallbacks.get(group.name))
                and (prompt_tokens := prompt_tokens if prompt_tokens >= 0 else estimate_tokens(body))
                > group.context_window
            ):
                targets = bigger  # the prompt does not fit: straight to a larger model
            else:
                verdict, value = await _run_group(
                    ctx, router, group, capability, call, deadline, total_s, retries, ctl.priority, streaming
                )
                if verdict == "ok":
                    policy = rc.content_policy_fallbacks.get(group.name)
                    if not policy or refused is None or not refused(value):
                        return value
                    _relabel(ctx, "content_filter")
                    refusal, targets = value, policy
                elif verdict == "exhausted":
                    error = value or error
                else:  # a content-filter or context-window refusal: that group's own fallbacks, or the client
                    table = (
                        rc.content_policy_fallbacks
                        if verdict == "content_filter"
                        else rc.context_window_fallbacks
                    )
                    targets = table.get(group.name)
                    if not targets:
                        raise value
                    error = value
            if chain is None:
                chain = _Chain(router, ctx, primary, ctl.fallbacks)
            if targets:
                chain.redirect(targets)
            group = chain.next()
        if refusal is not None:
            return refusal
        if error is not None:
            raise error
        # Nothing was tried: every deployment is disabled (admins cannot disable a group's last one).
        raise UpstreamError(f"no deployment of model '{primary.name}' is available")
    finally:
        budget.requests -= 1


async def _run_group(
    ctx: RequestContext,
    router: Router,
    group: ModelGroup,
    capability: str,
    call: Call[Any],
    deadline: float,
    total_s: float,
    retries: int,
    priority: int | None,
    streaming: bool,
) -> tuple[str, Any]:
    """Up to 1 + retries attempts on one group: ("ok", result), ("exhausted", last error or None),
    or (refusal kind, error) for a content-filter or context-window refusal."""
    rc = router.config
    budget = router.budget
    gate = group.gate
    tried: list[Deployment] | None = None
    last: GatewayError | None = None
    waits = 0
    left = retries + 1
    while left:
        left -= 1
        remaining = deadline - perf_counter()
        if remaining <= 0:
            raise _out_of_time(total_s, last)
        if gate is not None and not gate.try_enter():
            await gate.enter(_priority(ctx, priority), remaining)
            remaining = deadline - perf_counter()
        try:
            d = group.choose(capability, tried, streaming)
            if d is None:
                break
            wait = 0.0
            if tried is not None and d in tried:
                # The same deployment again: back off (or honour its retry-after), within the budget.
                assert last is not None
                found = retry_delay_s(last, waits, rc.retry_backoff_s, rc.retry_backoff_max_s)
                if found is None or found >= remaining or not budget.acquire():
                    break
                wait = found
                waits += 1
            try:
                if wait:
                    await asyncio.sleep(wait)
                    remaining = deadline - perf_counter()
                outcome, value = await _attempt(ctx, group, d, call, remaining, streaming)
            finally:
                if wait:
                    budget.release()
        finally:
            if gate is not None:
                gate.leave()
        if outcome != "retry":
            return outcome, value
        last = value
        if tried is None:
            tried = [d]
        elif d not in tried:
            tried.append(d)
    return "exhausted", last


def _relabel(ctx: RequestContext, outcome: str) -> None:
    """Mark the last attempt of the log with a different outcome (a refusal found after it succeeded)."""
    log = ctx.attempt_log
    if log:
        log[-1] = log[-1]._replace(outcome=outcome)


async def _attempt(
    ctx: RequestContext, group: ModelGroup, d: Deployment, call: Call[T], limit_s: float, streaming: bool
) -> tuple[str, Any]:
    """One attempt with its bookkeeping: ("ok", result) or (outcome, error) for what the loop does next.

    Raises what must reach the client unchanged: a non-retryable error, a cancellation, a bug.
    """
    ctx.deployment = d
    ctx.attempts += 1
    ctx.stream_error = None
    if group.tracks_usage:
        group.count_request(d, monotonic())
    d.in_flight += 1
    began = perf_counter()
    try:
        value = await call(d, limit_s)
    except GatewayError as exc:
        now = monotonic()
        elapsed = perf_counter() - began
        if ctx.response_started:  # past the commit point nothing is retried
            group.failed(d, now)
            _log(ctx, d, group, "stream_error", _status(exc), elapsed)
            raise
        if is_content_filter(exc):
            _log(ctx, d, group, "content_filter", _status(exc), elapsed)
            return "content_filter", exc
        if is_context_overflow(exc):
            _log(ctx, d, group, "context_window", _status(exc), elapsed)
            return "context_window", exc
        if is_retryable(exc):
            group.failed(d, now)
            _log(ctx, d, group, "retry", _status(exc), elapsed)
            return "retry", exc
        _log(ctx, d, group, "error", _status(exc), elapsed)
        raise
    except asyncio.CancelledError:
        _log(ctx, d, group, "cancelled", None, perf_counter() - began)
        raise
    finally:
        d.in_flight -= 1
    now = monotonic()
    elapsed = perf_counter() - began
    if ctx.stream_error is not None:
        group.failed(d, now)
        _log(ctx, d, group, "stream_error", _status(ctx.stream_error), elapsed)
    else:
        group.succeeded(d, now, ctx.ttft_s if streaming else elapsed, streaming)
        _log(ctx, d, group, "ok", 200, elapsed)
    if group.tracks_usage and ctx.usage is not None:
        group.count_tokens(d, now, ctx.usage.total_tokens)
    return "ok", value
