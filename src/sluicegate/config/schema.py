"""The configuration file's schema (SPEC §3) as frozen msgspec structs.

Unknown keys are rejected (`forbid_unknown_fields`) and every struct is frozen, so a loaded
config can be shared by all in-flight requests and swapped whole on reload. Secrets arrive
here already resolved from `env:`/`file:` references (see loader.py).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Strategy = Literal["round-robin", "weighted", "least-busy", "least-latency", "lowest-cost", "usage-aware"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Price(_Strict, frozen=True):
    """USD per million tokens; overrides the built-in table (spend/price_table.py) for this model."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # cache reads; default: billed as input
    cache_write_per_mtok: float | None = None  # cache writes (Anthropic, Bedrock); default: as input

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # also rejects NaN
                raise ValueError(f"{name} must be >= 0, got {value!r}")


class MockOptions(_Strict, frozen=True):
    """Behaviour of the built-in `mock` provider (SPEC §5)."""

    reply: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0  # 0 = as fast as possible
    fail_rate: float = 0.0
    fail_status: int = 500
    timeout_rate: float = 0.0  # share of calls that never answer (the gateway's timeout fires)
    cut_after_tokens: int | None = None  # streams stop after N tokens without finishing


class HealthCheck(_Strict, frozen=True):
    """Active health checks of one deployment (issue #5): a tiny call every `interval_s`."""

    interval_s: float
    timeout_s: float = 5.0
    unhealthy_threshold: int = 2  # consecutive failed checks before the deployment is taken out
    probe: Literal["chat", "embeddings"] = "chat"


class ModelEntry(_Strict, frozen=True):
    name: str
    provider: str
    model: str | None = None
    api_key: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    preset: str | None = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    price: Price | None = None
    timeout_s: float | None = None
    connect_timeout_s: float | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    default_max_tokens: int | None = None
    drop_params: bool = False
    mock: MockOptions | None = None
    # Routing (issue #5, docs/routing.md): concurrent calls this deployment takes, its context
    # window in tokens (for context-window fallbacks), and optional active health checks.
    max_parallel: int | None = None
    context_window: int | None = None
    health_check: HealthCheck | None = None
    # Provider-specific fields named in SPEC §3 (used by the providers of issue #3).
    aws_region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_credentials: str | None = None

    @property
    def upstream_model(self) -> str:
        return self.model or self.name


class EjectionConfig(_Strict, frozen=True):
    """Outlier ejection (SPEC §8 defaults): when a deployment is taken out, and for how long."""

    consecutive_failures: int = 5
    failure_rate: float = 0.5  # eject above this share of failed calls...
    min_calls: int = 10  # ...once the window holds at least this many calls
    window_s: float = 60.0
    base_s: float = 30.0  # ejection time = base_s x times ejected, capped at max_s
    max_s: float = 300.0


class RetryBudgetConfig(_Strict, frozen=True):
    """Concurrent retries allowed: max(min_concurrency, percent% of in-flight requests)."""

    percent: float = 20.0
    min_concurrency: int = 3


class RouterConfig(_Strict, frozen=True):
    strategy: Strategy = "round-robin"
    retries: int = 2  # extra attempts per model group, before the first byte only
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    ttft_timeout_s: float = 30.0
    stream_idle_timeout_s: float = 120.0
    fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    content_policy_fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    retry_backoff_s: float = 0.1  # full-jitter exponential backoff: base...
    retry_backoff_max_s: float = 5.0  # ...and cap of one wait (a provider's retry-after may ask for more)
    retry_budget: RetryBudgetConfig = msgspec.field(default_factory=RetryBudgetConfig)
    ejection: EjectionConfig = msgspec.field(default_factory=EjectionConfig)
    queue_size: int = 100  # calls waiting for a group at its max_parallel limit
    sync_interval_s: float = 1.0  # how often shared routing state is exchanged through Redis


class CacheConfig(_Strict, frozen=True):
    backend: Literal["memory", "redis"] = "memory"
    ttl_s: float = 3600.0


class ResponsesConfig(_Strict, frozen=True):
    """The store behind `/v1/responses` `previous_response_id` and GET/DELETE (per process)."""

    retention_s: float = 3600.0
    max_stored: int = 10000  # 0 = keep nothing (`store` then has no effect)

    def __post_init__(self) -> None:
        # msgspec reports these as `responses: <message>`, quoting the section.
        if self.retention_s <= 0:
            raise ValueError(f"retention_s must be > 0, got {self.retention_s:g}")
        if self.max_stored < 0:
            raise ValueError(f"max_stored must be >= 0, got {self.max_stored}")


class ServerConfig(_Strict, frozen=True):
    """Transport settings (not in SPEC §3's example; see docs/configuration.md)."""

    host: str = "127.0.0.1"
    port: int = 8400
    workers: int = 1
    max_body_bytes: int = 10 * 1024 * 1024
    # SIGTERM -> the worker exits within this many seconds: in-flight calls finish or are cut with an
    # error event shortly before it, then shutdown hooks (ledger flush) run (docs/operations.md).
    drain_timeout_s: float = 30.0


class AlertsConfig(_Strict, frozen=True):
    """Where soft-budget alerts go: a Slack-compatible webhook (`{"text": ...}` POSTed as JSON)."""

    webhook_url: str | None = None


class ModelBudget(_Strict, frozen=True):
    """Spend limits of one model group, over every key that calls it (docs/accounting.md)."""

    budget_usd: float | None = None
    budget_period: Literal["1h", "1d", "7d", "30d"] | None = None  # None = lifetime
    soft_budget_usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("budget_usd", "soft_budget_usd"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # also rejects NaN
                raise ValueError(f"{name} must be >= 0, got {value!r}")


class Config(_Strict, frozen=True):
    master_key: str | None = None
    database_url: str = "sqlite:///sluicegate.db"
    redis_url: str | None = None
    models: list[ModelEntry] = msgspec.field(default_factory=list)
    router: RouterConfig = msgspec.field(default_factory=RouterConfig)
    cache: CacheConfig | None = None
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
    # `/passthrough/{provider}/...`: provider or preset name -> the model whose deployment serves it
    # (default: the first deployment of that provider in `models`); see docs/passthrough.md.
    passthrough: dict[str, str] = msgspec.field(default_factory=dict)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    # Named model allowlists that keys, users and teams refer to by `tier` (docs/keys.md).
    tiers: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # Soft-budget alert destination, and budgets per model group (issue #4; pipeline/accounting.py).
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    model_budgets: dict[str, ModelBudget] = msgspec.field(default_factory=dict)
