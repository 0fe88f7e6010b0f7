"""The dispatch loop without sockets: failover, retries and backoff, budget, fallback chains, content
and context refusals, the total timeout, per-request controls and the attempt log."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

import pytest

from sluicegate.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from sluicegate.pipeline.dispatch import attempt_timeout, dispatch, open_upstream
from sluicegate.routing.fallbacks import estimate_tokens
from sluicegate.types import UpstreamRequest
from tests.unit.routing_support import Script, context, router, runtime, status

BASE = """
models:
  - {name: a, provider: mock}
  - {name: a, provider: mock}
  - {name: b, provider: mock}
  - {name: c, provider: mock}
  - {name: small, provider: mock, context_window: 100}
  - {name: big, provider: mock, context_window: 100000}
router:
  retries: 2
  retry_backoff_s: 0.01
  retry_backoff_max_s: 0.02
  fallbacks: {a: [b, c]}
  context_window_fallbacks: {small: [big]}
  content_policy_fallbacks: {a: [c]}
"""


async def run(
    script: Script, model: str = "a", text: str = BASE, ctx: Any = None, **kwargs: Any
) -> tuple[Any, Any]:
    ctx = ctx or context()
    r = router(text)
    result = await dispatch(runtime(r), ctx, model, "chat", script, **kwargs)
    return result, ctx


async def test_first_healthy_deployment_answers_in_one_attempt() -> None:
    """No failure: one attempt, logged as ok."""
    script = Script()
    result, ctx = await run(script)
    assert result == "ok" and script.calls == ["a/0"]
    assert ctx.attempts == 1 and [a.outcome for a in ctx.attempt_log] == ["ok"]


async def test_retryable_failure_moves_to_the_other_deployment_at_once() -> None:
    """A 503 from one deployment sends the retry to its partner without waiting."""
    script = Script(a__0=[status(503)])
    began = perf_counter()
    result, ctx = await run(script)
    assert result == "ok" and script.calls == ["a/0", "a/1"]
    assert perf_counter() - began < 0.01
    assert [(a.deployment, a.outcome, a.status) for a in ctx.attempt_log] == [
        ("a/0", "retry", 503),
        ("a/1", "ok", 200),
    ]


async def test_retries_are_bounded_then_fallbacks_run_in_order() -> None:
    """With retries: 2 a group gets three attempts, then `b`, then `c`, in that order."""
    script = Script(a__0=[status(500)] * 5, a__1=[status(500)] * 5, b__0=[status(502)] * 3, c__0=["from c"])
    result, ctx = await run(script)
    assert result == "from c"
    assert [c.split("/")[0] for c in script.calls] == ["a", "a", "a", "b", "b", "b", "c"]
    assert ctx.attempts == 7 and ctx.model == "a"
    assert ctx.deployment.label == "c/0"


async def test_same_deployment_retry_waits_for_retry_after() -> None:
    """Retrying the one deployment of a group waits at least the provider's retry-after."""
    script = Script(b__0=[status(429, **{"retry-after": "0.3"})])
    began = perf_counter()
    result, _ = await run(script, model="b")
    assert result == "ok" and script.calls == ["b/0", "b/0"]
    assert perf_counter() - began >= 0.3


async def test_non_retryable_error_goes_straight_to_the_client() -> None:
    """A provider 400 is not retried and no fallback is tried."""
    script = Script(a__0=[status(400, "bad parameter")])
    with pytest.raises(Exception) as info:
        await run(script)
    assert getattr(info.value, "upstream_status", None) == 400
    assert script.calls == ["a/0"]


async def test_exhausted_chain_raises_the_last_error() -> None:
    """When every group fails, the client sees the last provider error."""
    script = Script(default=UpstreamConnectionError("refused"))
    with pytest.raises(UpstreamConnectionError):
        await run(script, text=BASE.replace("retries: 2", "retries: 0"))
    assert [c.split("/")[0] for c in script.calls] == ["a", "b", "c"]


async def test_retries_header_zero_disables_failover() -> None:
    """`x-sluicegate-retries: 0` and empty `x-sluicegate-fallbacks` make exactly one attempt."""
    script = Script(a__0=[status(503)])
    ctx = context({b"x-sluicegate-retries": b"0", b"x-sluicegate-fallbacks": b""})
    with pytest.raises(Exception) as info:
        await run(script, ctx=ctx)
    assert getattr(info.value, "upstream_status", None) == 503 and script.calls == ["a/0"]


async def test_request_fallbacks_replace_the_configured_ones() -> None:
    """Fallbacks named by the request (header, else body) are used instead of the configured list."""
    script = Script(default=status(503), c__0=["from c"])
    ctx = context({b"x-sluicegate-retries": b"0", b"x-sluicegate-fallbacks": b"c"})
    result, _ = await run(script, ctx=ctx)
    assert result == "from c" and [c.split("/")[0] for c in script.calls] == ["a", "c"]
    script = Script(default=status(503), c__0=["from c"])
    result, _ = await run(script, ctx=context(), controls={"retries": 0, "fallbacks": ["c"]})
    assert result == "from c" and [c.split("/")[0] for c in script.calls] == ["a", "c"]


async def test_unknown_request_fallback_is_a_404() -> None:
    """A fallback the gateway does not know is refused before any attempt."""
    script = Script()
    with pytest.raises(ModelNotFoundError):
        await run(script, ctx=context({b"x-sluicegate-fallbacks": b"nope"}))
    assert script.calls == []


async def test_bad_control_values_are_400s_naming_the_control() -> None:
    """Malformed per-request controls are 400s that name the header or body field."""
    with pytest.raises(InvalidRequestError) as info:
        await run(Script(), ctx=context({b"x-sluicegate-retries": b"many"}))
    assert info.value.param == "x-sluicegate-retries"
    with pytest.raises(InvalidRequestError) as info:
        await run(Script(), controls={"priority": "urgent"})
    assert info.value.param == "sluicegate.priority"
    with pytest.raises(InvalidRequestError) as info:
        await run(Script(), controls=["x"])
    assert info.value.param == "sluicegate"


async def test_content_filter_refusal_goes_to_the_content_policy_fallback() -> None:
    """A provider 400 coded content_filter moves to `content_policy_fallbacks`, skipping retries."""
    refusal = status(400, "flagged")
    refusal.code = "content_filter"
    script = Script(a__0=[refusal], c__0=["from c"])
    result, ctx = await run(script)
    assert result == "from c" and script.calls == ["a/0", "c/0"]
    assert [a.outcome for a in ctx.attempt_log] == ["content_filter", "ok"]


async def test_content_filtered_reply_goes_to_the_fallback_and_is_kept_if_it_fails() -> None:
    """A complete reply with finish_reason content_filter is retried on the content-policy fallback;
    if the fallback fails, the original (filtered) reply is returned rather than an error."""
    script = Script(a__0=["filtered"], c__0=["clean"])
    result, _ = await run(script, refused=lambda r: r == "filtered")
    assert result == "clean"
    script = Script(a__0=["filtered"], default=status(503))
    result, ctx = await run(script, refused=lambda r: r == "filtered")
    assert result == "filtered" and ctx.attempt_log[0].outcome == "content_filter"


async def test_content_filter_without_fallback_reaches_the_client() -> None:
    """With no content-policy fallback for the group, the refusal is the client's answer."""
    refusal = status(400, "flagged")
    refusal.code = "content_policy_violation"
    script = Script(b__0=[refusal])
    with pytest.raises(Exception) as info:
        await run(script, model="b")
    assert info.value is refusal and script.calls == ["b/0"]


async def test_prompt_over_the_context_window_skips_to_the_bigger_model() -> None:
    """A prompt estimated over `context_window` goes straight to the context-window fallback."""
    long_body = {"messages": [{"role": "user", "content": "x" * 2000}]}
    assert estimate_tokens(long_body) > 100
    script = Script()
    _, ctx = await run(script, model="small", body=long_body)
    assert script.calls == ["big/0"] and ctx.attempts == 1
    script = Script()
    await run(script, model="small", body={"messages": [{"role": "user", "content": "hi"}]})
    assert script.calls == ["small/0"]


async def test_provider_context_overflow_also_moves_to_the_bigger_model() -> None:
    """A provider's context_length_exceeded refusal moves to the context-window fallback."""
    overflow = status(400, "This model's maximum context length is 100 tokens")
    script = Script(small__0=[overflow])
    await run(script, model="small", body={"messages": [{"role": "user", "content": "hi"}]})
    assert script.calls == ["small/0", "big/0"]


async def test_total_timeout_covers_every_attempt_and_wait() -> None:
    """Attempts get only what is left of the total timeout, and the loop stops when it runs out."""
    calls: list[float] = []

    async def slow(d: Any, limit_s: float) -> str:
        calls.append(limit_s)
        await asyncio.sleep(min(limit_s, 0.2))
        raise UpstreamTimeoutError("slow")

    began = perf_counter()
    ctx = context({b"x-sluicegate-timeout-s": b"0.5", b"x-sluicegate-retries": b"10"})
    with pytest.raises(UpstreamTimeoutError) as info:
        await dispatch(runtime(router(BASE)), ctx, "b", "chat", slow)
    assert 0.5 <= perf_counter() - began < 0.8
    assert "total timeout of 0.5 s" in info.value.message
    assert calls[0] <= 0.5 and calls == sorted(calls, reverse=True)


async def test_budget_exhausted_stops_same_deployment_retries() -> None:
    """With the retry budget used up, a retry on the same deployment is not made."""
    r = router(BASE.replace("retries: 2", "retries: 3"))
    r.budget.retries = r.budget.minimum  # every retry slot is taken by other requests
    script = Script(default=status(503))
    with pytest.raises(UpstreamStatusError):
        await dispatch(runtime(r), context({b"x-sluicegate-fallbacks": b""}), "b", "chat", script)
    assert script.calls == ["b/0"]


async def test_failover_to_untried_deployment_is_outside_the_budget() -> None:
    """Moving to a deployment the request has not tried is failover, allowed even with no budget left."""
    r = router(BASE)
    r.budget.retries = r.budget.minimum
    script = Script(a__0=[status(503)])
    assert await dispatch(runtime(r), context(), "a", "chat", script) == "ok"
    assert script.calls == ["a/0", "a/1"]


async def test_failures_eject_a_deployment_for_later_requests() -> None:
    """Five failed attempts eject a deployment: later requests go straight to its partner."""
    r = router(BASE)
    script = Script(a__0=[status(500)] * 100)
    for _ in range(12):
        await dispatch(runtime(r), context(), "a", "chat", script)
    assert script.calls.count("a/0") == 5
    assert r.groups["a"].state()[0]["ejected"] is True


async def test_unknown_model_is_404() -> None:
    """The primary model must exist, as before routing existed."""
    with pytest.raises(ModelNotFoundError):
        await run(Script(), model="nope")


async def test_stream_attempts_use_the_stream_idle_timeout() -> None:
    """A stream is opened with the idle timeout (at most the deployment's), a complete call with the
    deployment's timeout cut to what is left of the total."""
    r = router(BASE.replace("router:\n", "router:\n  stream_idle_timeout_s: 7\n"))
    d = r.groups["b"].deployments[0]
    seen: list[tuple[float, bool]] = []

    class Recorder:
        async def open(
            self, request: Any, *, timeout_s: float, connect_timeout_s: float, stream: bool
        ) -> Any:
            seen.append((timeout_s, stream))
            return None

    d.transport = Recorder()
    ctx = context()
    ctx.deployment = d
    await open_upstream(ctx, UpstreamRequest("POST", "mock://x", {}, b"{}"), stream=True)
    await open_upstream(ctx, UpstreamRequest("POST", "mock://x", {}, b"{}"), stream=False)
    assert seen == [(7.0, True), (600.0, False)]


def test_attempt_timeout_is_cut_to_the_time_left_in_coarse_steps() -> None:
    """An attempt may not outlive the total timeout; the cut value is rounded up to 0.1 s (1 s above 10 s)."""
    d = router(BASE).groups["b"].deployments[0]
    assert attempt_timeout(d, 900.0) == 600.0
    assert attempt_timeout(d, 0.34) == pytest.approx(0.4)
    assert attempt_timeout(d, 42.2) == 43.0
    assert attempt_timeout(d, 0.0001) == pytest.approx(0.1)


def test_the_keys_default_priority_applies_unless_the_request_names_one() -> None:
    """A key's `priority` orders its calls in the queue; a per-request priority overrides it."""
    from sluicegate.auth.principal import Principal
    from sluicegate.pipeline.context import RequestContext
    from sluicegate.pipeline.dispatch import _priority
    from sluicegate.routing.priority import PRIORITIES

    ctx = RequestContext(request_id=b"r", started=0.0)
    ctx.principal = Principal(kind="virtual", key_id="k", priority="high")
    assert _priority(ctx, None) == PRIORITIES["high"]
    assert _priority(ctx, PRIORITIES["low"]) == PRIORITIES["low"]
    ctx.principal = Principal(kind="virtual", key_id="k")
    assert _priority(ctx, None) == PRIORITIES["normal"]
