"""Per-request state: the one object every pipeline step reads and writes (STYLE rule 6)."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

from ..auth.principal import Principal
from ..routing.deployment import Deployment
from ..types import Usage


@dataclass(slots=True)
class RequestContext:
    request_id: bytes
    started: float
    principal: Principal | None = None
    model: str | None = None
    deployment: Deployment | None = None
    upstream_s: float = 0.0  # time spent waiting on the provider (to first byte, for streams)
    attempts: int = 0
    usage: Usage | None = None
    response_started: bool = False

    def overhead_ms(self) -> float:
        return max(0.0, (perf_counter() - self.started - self.upstream_s) * 1000.0)

    def model_headers(self) -> list[tuple[bytes, bytes]]:
        """SPEC §6 headers of a model call, computed when the response starts."""
        deployment = self.deployment
        return [
            (b"x-request-id", self.request_id),
            (b"x-sluicegate-deployment", deployment.label.encode() if deployment else b""),
            (b"x-sluicegate-attempts", str(self.attempts).encode()),
            (b"x-sluicegate-cache", b"off"),
            (b"x-sluicegate-overhead-ms", f"{self.overhead_ms():.3f}".encode()),
        ]
