"""The admin API's request and response bodies as msgspec structs (also the source of its OpenAPI document).

Request structs forbid unknown fields and carry their constraints (non-negative limits, known
budget periods, timezone-aware dates), so a bad payload fails to decode with a message naming the
field, before anything touches the database. In PATCH bodies an absent field is left as it is
and `null` clears it (`UNSET` vs `None`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ...store.audit import AuditEntry, ChainCheck
from ...store.ledger import SpendGroup

# 2**53: the largest integer a JSON client in any language reads back exactly.
NonNegInt = Annotated[int, Meta(ge=0, le=2**53)]
Money = Annotated[float, Meta(ge=0, le=1e12)]
Period = Literal["1h", "1d", "7d", "30d", "lifetime"]
Alias = Annotated[str, Meta(max_length=256)]
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+-]*$", min_length=1, max_length=128)]
Tier = Annotated[str, Meta(min_length=1, max_length=64)]
ModelName = Annotated[str, Meta(min_length=1, max_length=256)]
Models = Annotated[list[ModelName], Meta(max_length=1000)]
IpList = Annotated[list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(max_length=256)]
Role = Literal["admin", "team_admin", "member", "viewer"]
Priority = Literal["high", "normal", "low"]
Email = Annotated[str, Meta(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]
Timestamp = Annotated[datetime, Meta(tz=True)]
TtlSeconds = Annotated[float, Meta(gt=0, le=10 * 366 * 86_400)]
GraceSeconds = Annotated[float, Meta(ge=0, le=30 * 86_400)]


class _In(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _LimitsIn(_In):
    alias: Alias | None = None
    models: Models = msgspec.field(default_factory=list)
    tier: Tier | None = None
    rpm: NonNegInt | None = None
    tpm: NonNegInt | None = None
    max_parallel: NonNegInt | None = None
    budget_usd: Money | None = None
    budget_period: Period | None = None
    soft_budget_usd: Money | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    log_bodies: bool = False


class TeamCreate(_LimitsIn, kw_only=True):
    """`POST /admin/teams`. Without `id` one is generated."""

    id: Ident | None = None


class UserCreate(_LimitsIn, kw_only=True):
    """`POST /admin/users`. Without `id` one is generated (use your own user ids to join data)."""

    id: Ident | None = None
    email: Email | None = None


class KeyCreate(_LimitsIn, kw_only=True):
    """`POST /admin/keys`. `ttl_s` is an alternative to `expires_at` for temporary keys."""

    expires_at: Timestamp | None = None
    ttl_s: TtlSeconds | None = None
    team_id: Ident | None = None
    user_id: Ident | None = None
    allowed_ips: IpList = msgspec.field(default_factory=list)
    role: Role = "member"
    priority: Priority | None = None  # default priority of the key's calls (routing queue)


class _LimitsPatch(_In):
    alias: Alias | UnsetType | None = UNSET
    models: Models | UnsetType = UNSET
    tier: Tier | UnsetType | None = UNSET
    rpm: NonNegInt | UnsetType | None = UNSET
    tpm: NonNegInt | UnsetType | None = UNSET
    max_parallel: NonNegInt | UnsetType | None = UNSET
    budget_usd: Money | UnsetType | None = UNSET
    budget_period: Period | UnsetType | None = UNSET
    soft_budget_usd: Money | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    log_bodies: bool | UnsetType = UNSET


class TeamUpdate(_LimitsPatch, kw_only=True):
    """`PATCH /admin/teams/{id}`: absent fields are kept, `null` clears."""


class UserUpdate(_LimitsPatch, kw_only=True):
    """`PATCH /admin/users/{id}`: absent fields are kept, `null` clears."""

    email: Email | UnsetType | None = UNSET


class KeyUpdate(_LimitsPatch, kw_only=True):
    """`PATCH /admin/keys/{id}`: absent fields are kept, `null` clears."""

    expires_at: Timestamp | UnsetType | None = UNSET
    ttl_s: TtlSeconds | UnsetType = UNSET
    team_id: Ident | UnsetType | None = UNSET
    user_id: Ident | UnsetType | None = UNSET
    allowed_ips: IpList | UnsetType = UNSET
    role: Role | UnsetType = UNSET
    priority: Priority | UnsetType | None = UNSET


class RotateIn(_In):
    """`POST /admin/keys/{id}/rotate`: how long the old secret keeps working (0 = not at all)."""

    grace_s: GraceSeconds = 0.0


class _LimitsOut(msgspec.Struct, kw_only=True):
    id: str
    alias: str | None
    models: list[str]
    tier: str | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget_usd: float | None
    budget_period: str | None  # null = lifetime
    soft_budget_usd: float | None
    metadata: dict[str, Any]
    log_bodies: bool
    created_at: datetime
    updated_at: datetime


class TeamOut(_LimitsOut, kw_only=True):
    pass


class UserOut(_LimitsOut, kw_only=True):
    email: str | None


class KeyOut(_LimitsOut, kw_only=True):
    key_prefix: str  # e.g. "sk-sg-AbCd1234": identifies the key; the secret is never shown again
    status: Literal["active", "revoked", "expired"]
    expires_at: datetime | None
    team_id: str | None
    user_id: str | None
    allowed_ips: list[str]
    role: str
    priority: str | None
    revoked_at: datetime | None
    previous_valid_until: datetime | None  # the replaced secret works until then (rotation grace)


class KeyCreated(KeyOut, kw_only=True):
    key: str  # the secret: shown in this response only


class KeyPage(msgspec.Struct, kw_only=True):
    data: list[KeyOut]
    next_cursor: str | None


class TeamPage(msgspec.Struct, kw_only=True):
    data: list[TeamOut]
    next_cursor: str | None


class UserPage(msgspec.Struct, kw_only=True):
    data: list[UserOut]
    next_cursor: str | None


class Deleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool


class SpendReport(msgspec.Struct, kw_only=True):
    """`GET /admin/spend` (SPEC §4): one entry per group, from the ledger."""

    data: list[SpendGroup]
    group_by: str
    start: datetime | None
    end: datetime | None


class LogOut(msgspec.Struct, kw_only=True):
    request_id: str
    ts: datetime
    endpoint: str | None
    key_id: str | None
    team_id: str | None
    user_id: str | None
    model: str | None
    provider: str | None
    deployment: str | None
    status_code: int
    error_code: str | None
    stream: bool
    latency_ms: float
    overhead_ms: float | None
    ttft_ms: float | None
    attempts: int
    cache: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: float
    usage_source: str | None
    tags: list[str]
    request_body: str | UnsetType | None = UNSET  # only in GET /admin/logs/{request_id}
    response_body: str | UnsetType | None = UNSET


class LogPage(msgspec.Struct, kw_only=True):
    data: list[LogOut]
    next_cursor: str | None


class AuditPage(msgspec.Struct, kw_only=True):
    data: list[AuditEntry]
    next_cursor: str | None
    chain: ChainCheck | None = None  # with ?verify=true: the whole chain checked


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None  # the offending field, e.g. "rpm" or "allowed_ips[1]"
    code: str | None


class ErrorBody(msgspec.Struct):
    """Every error, in OpenAI's shape."""

    error: ErrorDetail
