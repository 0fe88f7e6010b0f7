"""Per-request state: the one object every pipeline step reads and writes (STYLE rule 6)."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any, NamedTuple

from ..auth.principal import Principal
from ..errors import GatewayError
from ..routing.deployment import Deployment
from ..spend.prices import cost_header, cost_usd
from ..types import Usage


class Attempt(NamedTuple):
    """One upstream attempt, for the request log: outcome is `ok`, `retry` (a retryable failure),
    `error` (not retryable), `content_filter`, `context_window`, `stream_error` (failed after the
    first byte) or `cancelled` (the client left)."""

    deployment: str  # the deployment's label, as in `x-sluicegate-deployment`
    model: str  # the model group it belongs to (differs from ctx.model after a fallback)
    outcome: str
    status: int | None  # the provider's HTTP status; None when no status line arrived
    duration_s: float


@dataclass(slots=True)
class RequestContext:
    request_id: bytes
    started: float
    principal: Principal | None = None
    model: str | None = None
    deployment: Deployment | None = None
    # Time spent waiting on providers, every attempt included (to the first byte, for streams).
    upstream_s: float = 0.0
    ttft_s: float = 0.0  # a stream's time to first token, on the attempt that reached the client
    attempts: int = 0
    usage: Usage | None = None
    response_started: bool = False
    # The request headers the gateway reads (server/http.py WANTED_HEADERS), for per-request controls.
    headers: dict[bytes, bytes] | None = None
    # Every upstream attempt in order (routing: pipeline/dispatch.py); None until the first one.
    attempt_log: list[Attempt] | None = None
    # Set when a stream failed after its first byte (it then ended with an in-band error event).
    stream_error: GatewayError | None = None
    # Accounting (pipeline/accounting.py): the route being billed (None = not a model call), the
    # limits admission (None = nothing to count), the call's cost once priced, the status the
    # caller saw when the route set one itself (passthrough), and whether the call was admitted.
    endpoint: str | None = None
    admission: Any = None
    admitted: bool = False
    cost_usd: float | None = None
    status: int = 0
    stream: bool = False
    # OpenAI frames a stream sent, kept (by reference) only to count its tokens if no usage arrives.
    frames: list[bytes] | None = None
    # Bodies for the request log, kept only when the caller's key/user/team logs bodies.
    request_body: Any = None
    response_body: bytes | None = None
    # How the call ended, as the server saw it (0 / None: the route's own success).
    error_code: str | None = None
    cut: bool = False  # cancelled at the drain deadline
    recorded: bool = False  # ledger and log rows queued (and journaled)
    finished: bool = False  # settled

    def overhead_ms(self) -> float:
        return max(0.0, (perf_counter() - self.started - self.upstream_s) * 1000.0)

    def model_headers(self) -> list[tuple[bytes, bytes]]:
        """SPEC §6 headers of a model call, computed when the response starts."""
        deployment = self.deployment
        headers = [
            (b"x-request-id", self.request_id),
            (b"x-sluicegate-deployment", deployment.label.encode() if deployment else b""),
            (b"x-sluicegate-attempts", str(self.attempts).encode()),
            (b"x-sluicegate-cache", b"off"),
            (b"x-sluicegate-overhead-ms", f"{self.overhead_ms():.3f}".encode()),
        ]
        # A complete reply's usage is known now: price it once (settle reuses it). A stream's
        # headers leave before its usage exists; its cost is in the ledger and the request log.
        if self.usage is not None and deployment is not None:
            price = deployment.price
            self.cost_usd = cost = 0.0 if price is None else cost_usd(self.usage, price)
            headers.append((b"x-sluicegate-cost-usd", cost_header(cost)))
        admission = self.admission
        if admission is not None and admission.headers:
            headers.extend(admission.headers)
        return headers
