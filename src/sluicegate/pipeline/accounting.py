"""Accounting: the money path of every model call — admission before dispatch, settle and records after.

    admit   (once the model is known: pipeline/dispatch.py, api/passthrough.py)
            the caller's scopes (key, user, team) + the model group's scope, checked and reserved
            in one limiter call: rpm, tpm (prompt estimate + allowed output), max_parallel, budgets
            (worst-case cost). The master key and keys without limits skip the limiter entirely.
    finish  (once per request, from server/app.py whatever the exit: success, error, client gone,
            drain cut, stream failure after the first byte)
            price the real usage (or the counted tokens of a stream that reported none), queue one
            ledger row (admitted calls) and one request-log row (every authenticated model call),
            then settle the reservation with what was used; soft-budget alerts go out in the
            background, one per scope and period across every process.

Budget counters are seeded from the ledger the first time this process sees a scope in a period
(single flight: the first call waits for one indexed SUM, later ones nothing), so a restart never
resets a budget. See docs/accounting.md for the decisions behind each rule.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson

from ..limits import Scope
from ..limits.periods import period_start
from ..spend.estimate import CHARS_PER_TOKEN, DEFAULT_MAX_OUTPUT_TOKENS, estimate_tokens, max_output_tokens
from ..spend.prices import ModelPrice, cost_usd, worst_case_cost
from ..store.ledger import LedgerRow
from ..store.logs import LogRow, redact_body
from ..types import UpstreamRequest, Usage
from .context import RequestContext

if TYPE_CHECKING:
    from ..config.schema import Config
    from ..limits import Limiter, SoftBudgetAlert
    from ..routing.router import ModelGroup
    from ..store.facade import Store
    from ..store.writer import RecordWriter

log = logging.getLogger("sluicegate.accounting")

# A reservation outlives the longest call the router allows by this margin (then it expires).
TTL_MARGIN_S = 60.0
_MAX_TAGS = 10
_MAX_TAG_LEN = 64
_MAX_SEEDED = 100_000
SEED_RETRY_S = 5.0


def model_scope(name: str, group: ModelGroup, config: Config) -> Scope | None:
    """The limits of a model group: the sum of its deployments' rpm/tpm (only if every deployment sets
    one: a deployment without a limit makes the group unlimited) and the group's own budget."""
    entries = [d.entry for d in group.deployments]
    rpms = [e.rpm for e in entries]
    tpms = [e.tpm for e in entries]
    rpm = sum(r for r in rpms if r is not None) if all(r is not None for r in rpms) else None
    tpm = sum(t for t in tpms if t is not None) if all(t is not None for t in tpms) else None
    budget = config.model_budgets.get(name)
    scope = Scope(
        kind="model",
        id=name,
        rpm=rpm,
        tpm=tpm,
        budget_usd=budget.budget_usd if budget else None,
        budget_period=budget.budget_period if budget else None,
        soft_budget_usd=budget.soft_budget_usd if budget else None,
    )
    return scope if scope.active else None


def _fallback_names(config: Config, name: str) -> list[str]:
    """`name` and every group its configured fallbacks can reach (for the worst-case price)."""
    rc = config.router
    seen = [name]
    for current in seen:
        for table in (rc.fallbacks, rc.content_policy_fallbacks, rc.context_window_fallbacks):
            for target in table.get(current, ()):
                if target not in seen:
                    seen.append(target)
    return seen


class Accounting:
    """Built once per Runtime (config); the limiter, writer and store are the process's own."""

    def __init__(
        self,
        config: Config,
        groups: Mapping[str, ModelGroup],
        limiter: Limiter,
        records: RecordWriter,
        store: Store,
        http: Any = None,  # upstream.client.HttpTransport, for the alert webhook
        *,
        seeded: set[tuple[str, str | None, int]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        self.records = records
        self.store = store
        self.http = http
        self.webhook_url = config.alerts.webhook_url
        self.ttl_s = config.router.timeout_s + TTL_MARGIN_S
        self.model_scopes: dict[str, Scope] = {}
        # The prices a call on a group may end up billed at (its deployments and its fallbacks'):
        # a budget reserves the dearest, so a fallback cannot cost more than was reserved.
        self.reserve_prices: dict[str, tuple[ModelPrice, ...]] = {}
        for name, group in groups.items():
            scope = model_scope(name, group, config)
            if scope is not None:
                self.model_scopes[name] = scope
            prices: list[ModelPrice] = []
            for reachable in _fallback_names(config, name):
                other = groups.get(reachable)
                for d in other.deployments if other is not None else ():
                    if d.price is not None and d.price not in prices:
                        prices.append(d.price)
            self.reserve_prices[name] = tuple(prices)
        # (scope, period) pairs already seeded: kept with the limiter (per process, across reloads).
        self._seeded = set() if seeded is None else seeded
        self._clock = clock
        self._seed_failed: dict[tuple[str, str | None, int], float] = {}
        self._seeding: dict[tuple[str, str | None, int], asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------------------ admission

    async def admit(
        self, ctx: RequestContext, model: str, body: Mapping[str, Any] | None, *, output: bool = True
    ) -> None:
        """Reserve the call against every scope it must pass, or raise the 429 (once per request).

        `output` False for calls that produce no tokens (embeddings): nothing is reserved for output.
        """
        if ctx.admitted:
            return
        ctx.request_body = body
        principal = ctx.principal
        assert principal is not None
        scopes: Sequence[Scope] = principal.scopes
        extra = self.model_scopes.get(model)
        if extra is not None:
            scopes = (*scopes, extra)
        active = tokens = cost = spend = False
        tightest_tpm = 0
        for s in scopes:
            if s.tpm is not None:
                tokens = True
                tightest_tpm = s.tpm if tightest_tpm == 0 else min(tightest_tpm, s.tpm)
            if s.budget_usd is not None:
                cost = True
            if s.budget_usd is not None or s.soft_budget_usd is not None:
                spend = True
            if s.rpm is not None or s.max_parallel is not None:
                active = True
        if not (active or tokens or spend):
            ctx.admitted = True
            return  # the master key, keys without limits: no limiter round trip at all
        if spend:
            await self._seed(scopes)
        est_tokens = 0
        est_cost = 0.0
        if tokens or cost:
            prompt = estimate_tokens(body) if body is not None else 0
            allowed = max_output_tokens(body) if output and body is not None else 0
            reserved = allowed or 0
            if output and allowed is None:
                # No max_tokens: reserve the default output, but never more than the tightest tpm
                # leaves after the prompt, so a small tpm still admits calls (settle corrects it).
                reserved = DEFAULT_MAX_OUTPUT_TOKENS
                if tokens:
                    reserved = min(reserved, max(0, tightest_tpm - prompt))
            est_tokens = prompt + reserved
            if cost:
                est_cost = max(
                    (worst_case_cost(p, prompt, allowed) for p in self.reserve_prices.get(model, ())),
                    default=0.0,
                )
        ctx.admission = await self.limiter.admit(
            ctx.request_id.decode("latin-1"), scopes, est_tokens, est_cost, ttl_s=self.ttl_s
        )
        ctx.admitted = True

    async def _seed(self, scopes: Sequence[Scope]) -> None:
        """Seed each budget counter from the ledger the first time this process meets it in a period."""
        now = self._clock()
        for scope in scopes:
            if not scope.tracks_spend:
                continue
            start = period_start(scope.budget_period, now)
            token = (scope.key, scope.budget_period, start)
            if token in self._seeded:
                continue
            retry_at = self._seed_failed.get(token)
            if retry_at is not None and now < retry_at:
                continue  # the ledger was unreachable a moment ago: no query (and no log line) per call
            pending = self._seeding.get(token)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._seeding[token] = future
            try:
                spent = await self.store.spent_since(scope.kind, scope.id, start * 1000 if start else None)
                await self.limiter.seed_spend(scope, start, spent)
                if len(self._seeded) >= _MAX_SEEDED:
                    self._seeded.clear()
                self._seeded.add(token)
                self._seed_failed.pop(token, None)
            except Exception:
                # Not marked: a call tries again after a pause. This one goes on against the live counter.
                self._seed_failed[token] = now + SEED_RETRY_S
                log.warning(
                    "could not seed a budget from the ledger", exc_info=True, extra={"scope": scope.key}
                )
            finally:
                del self._seeding[token]
                future.set_result(None)

    # ------------------------------------------------------------------------------ settle

    def record(self, ctx: RequestContext) -> None:
        """Price the call and queue its ledger and log rows (journaled). Once per request, without
        awaiting: the server calls it just before a response's last byte is sent (so a call is in
        the journal before the caller has its answer), and `finish` calls it for calls that end
        any other way. `ctx.status`, `ctx.error_code` and `ctx.cut` say how the call ended."""
        if ctx.recorded:
            return
        ctx.recorded = True
        principal = ctx.principal
        assert principal is not None
        deployment = ctx.deployment
        usage = ctx.usage
        source = "provider"
        attempts = ctx.attempt_log
        client_left = bool(attempts) and attempts[-1].outcome == "cancelled"  # type: ignore[index]
        stream_error = ctx.stream_error
        error_code = ctx.error_code
        if stream_error is not None and error_code is None:
            error_code = stream_error.code or "stream_error"
        if client_left and error_code is None:
            error_code = "client_disconnected"
        started = ctx.response_started
        partial = started and (stream_error is not None or client_left or ctx.cut)
        if usage is None and ctx.frames is not None:
            usage = self._counted(ctx)
            source = "counted"
        price = deployment.price if deployment is not None else None
        cost = ctx.cost_usd
        if cost is None:
            cost = cost_usd(usage, price) if usage is not None and price is not None else 0.0
        ctx.cost_usd = cost
        ctx.usage = usage
        tags = _tags(ctx)
        if deployment is not None and price is None and usage is not None:
            tags.append("unpriced")
        status = ctx.status or (200 if started else 500)
        ts = int(time.time() * 1000)
        request_id = ctx.request_id.decode("latin-1")
        key_id = principal.key_id
        model = deployment.entry.name if deployment is not None else ctx.model
        provider = deployment.entry.provider if deployment is not None else None
        label = deployment.label if deployment is not None else None
        u = usage or _NO_USAGE
        latency_ms = (perf_counter() - ctx.started) * 1000.0
        ledger = None
        if ctx.admitted:
            ledger = LedgerRow(
                request_id=request_id,
                ts=ts,
                key_id=key_id,
                user_id=principal.user_id,
                team_id=principal.team_id,
                model=model,
                provider=provider,
                deployment=label,
                input_tokens=u.prompt_tokens,
                cached_tokens=u.cached_tokens,
                output_tokens=u.completion_tokens,
                cost_usd=cost,
                usage_source=source,  # type: ignore[arg-type]
                status=status,
                partial=partial,
                duration_ms=latency_ms,
                tags=tags,
            )
        request_body = response_body = None
        if principal.log_bodies:
            request_body, response_body = _bodies(ctx)
        row = LogRow(
            request_id=request_id,
            ts=ts,
            endpoint=ctx.endpoint,
            key_id=key_id,
            team_id=principal.team_id,
            user_id=principal.user_id,
            model=model,
            provider=provider,
            deployment=label,
            status_code=status,
            error_code=error_code,
            stream=ctx.stream,
            latency_ms=latency_ms,
            overhead_ms=ctx.overhead_ms() if deployment is not None else None,
            ttft_ms=ctx.ttft_s * 1000.0 if ctx.ttft_s else None,
            attempts=ctx.attempts,
            cache="off",
            input_tokens=u.prompt_tokens,
            cached_tokens=u.cached_tokens,
            output_tokens=u.completion_tokens,
            cost_usd=cost,
            usage_source=source if usage is not None else None,
            tags=tags,
            request_body=request_body,
            response_body=response_body,
        )
        self.records.put_nowait(ledger, row)

    async def finish(self, ctx: RequestContext) -> None:
        """Record (if the response did not already) and settle one call; once per request, on every
        exit path, after the response."""
        if ctx.finished:
            return
        ctx.finished = True
        # The rows first: they are the record of spend; the limiter's counters are copies of it.
        self.record(ctx)
        await self.records.wait_for_room()
        admission = ctx.admission
        if admission is None:
            return
        usage = ctx.usage
        cost = ctx.cost_usd or 0.0
        if ctx.attempt_log is None and not ctx.response_started:
            # Refused before any provider was asked (e.g. unsupported capability): give it all back.
            await self.limiter.release(admission)
            return
        result = await self.limiter.settle(admission, usage.total_tokens if usage is not None else 0, cost)
        if result.soft_alerts:
            task = asyncio.get_running_loop().create_task(self._alert(result.soft_alerts))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _counted(self, ctx: RequestContext) -> Usage:
        """Usage of a stream that reported none: the prompt estimate plus the streamed text's tokens."""
        chars = 0
        for frame in ctx.frames or ():
            for line in frame.split(b"\n"):
                if not line.startswith(b"data: {"):
                    continue
                try:
                    event = orjson.loads(line[6:])
                except orjson.JSONDecodeError:
                    continue
                for choice in event.get("choices") or ():
                    delta = choice.get("delta") or choice.get("message") or {}
                    for field in ("content", "reasoning_content", "refusal"):
                        text = delta.get(field)
                        if isinstance(text, str):
                            chars += len(text)
                    for call in delta.get("tool_calls") or ():
                        function = call.get("function") or {}
                        chars += len(function.get("name") or "") + len(function.get("arguments") or "")
        body = ctx.request_body
        prompt = estimate_tokens(body) if isinstance(body, Mapping) else 0
        return Usage(prompt_tokens=prompt, completion_tokens=math.ceil(chars / CHARS_PER_TOKEN))

    # ------------------------------------------------------------------------------ alerts

    async def _alert(self, alerts: Sequence[SoftBudgetAlert]) -> None:
        """One message per scope and period across every process (`claim_budget_alert`)."""
        for alert in alerts:
            scope = alert.scope
            try:
                if not await self.store.claim_budget_alert(scope.kind, scope.id, alert.period_start):
                    continue
            except Exception:
                log.warning("could not record a soft-budget alert", exc_info=True)
                continue
            period = scope.budget_period or "lifetime"
            text = (
                f"Sluicegate: {scope.kind} '{scope.id}' has spent ${alert.spent_usd:.4f}, past its soft "
                f"budget of ${scope.soft_budget_usd or 0:.2f} ({period})"
            )
            log.warning(
                "soft budget crossed",
                extra={"scope": scope.key, "spent_usd": alert.spent_usd, "period": period},
            )
            if self.webhook_url and self.http is not None:
                await self._post(text)

    async def _post(self, text: str) -> None:
        body = orjson.dumps({"text": text})
        request = UpstreamRequest("POST", self.webhook_url or "", {"content-type": "application/json"}, body)
        try:
            reply = await self.http.open(request, timeout_s=10.0, connect_timeout_s=5.0, stream=False)
            try:
                await reply.read()
                if reply.status >= 400:
                    log.warning("alert webhook answered %d", reply.status)
            finally:
                reply.close()
        except Exception:
            log.warning("alert webhook failed", exc_info=True)

    async def close(self) -> None:
        """Wait for alerts still being sent (shutdown hook)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


_NO_USAGE = Usage()


def _tags(ctx: RequestContext) -> list[str]:
    raw = ctx.headers.get(b"x-sluicegate-tags") if ctx.headers else None
    if not raw:
        return []
    tags = []
    for part in raw.decode("latin-1").split(","):
        tag = part.strip()[:_MAX_TAG_LEN]
        if tag and tag not in tags:
            tags.append(tag)
            if len(tags) >= _MAX_TAGS:
                break
    return tags


def _bodies(ctx: RequestContext) -> tuple[str | None, str | None]:
    """Request and response bodies for the log, secrets redacted (only for keys that log bodies)."""
    body = ctx.request_body
    request = None
    if isinstance(body, (bytes, bytearray)):
        try:
            request = redact_body(orjson.loads(body))
        except orjson.JSONDecodeError:
            request = None
    elif body is not None:
        request = redact_body(body)
    response = None
    raw = ctx.response_body
    if raw is None and ctx.frames:
        raw = b"".join(ctx.frames)
        response = redact_body(raw.decode("utf-8", "replace"))
    elif raw is not None:
        try:
            response = redact_body(orjson.loads(raw))
        except orjson.JSONDecodeError:
            response = redact_body(raw.decode("utf-8", "replace"))
    return request, response
