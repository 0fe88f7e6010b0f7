"""In-memory records of virtual keys, users and teams: what the store returns and the hot path reads.

Frozen and slotted: one instance is shared by every request that uses the key until the cache
drops it. Times are integers of milliseconds since the epoch, as in the database. Each record
turns into the limits engine's `Scope` (limits/base.py) once, when a key is resolved; a resolved
`Principal` carries one per scope the call must pass, so the hot path converts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..limits.base import Scope

ScopeKind = Literal["key", "user", "team"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Account:
    """Fields keys, users and teams share."""

    id: str
    alias: str | None = None
    models: tuple[str, ...] = ()  # allowlist; empty = every model
    tier: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str | None = None
    soft_budget_usd: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    log_bodies: bool = False
    created_at: int = 0
    updated_at: int = 0

    def _limits(self, kind: ScopeKind) -> Scope:
        return Scope(
            kind=kind,
            id=self.id,
            rpm=self.rpm,
            tpm=self.tpm,
            max_parallel=self.max_parallel,
            budget_usd=self.budget_usd,
            budget_period=self.budget_period,
            soft_budget_usd=self.soft_budget_usd,
        )

    def allowlist(self, tiers: Mapping[str, Sequence[str]]) -> frozenset[str] | None:
        """The models this scope allows: `models` narrowed by its tier's list; None = every model.

        A tier missing from the config allows nothing: a key must not gain models because the
        tier that restricted it was deleted.
        """
        allowed = frozenset(self.models) if self.models else None
        if self.tier is not None:
            tier_models = frozenset(tiers.get(self.tier, ()))
            allowed = tier_models if allowed is None else allowed & tier_models
        return allowed


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamRecord(_Account):
    def limits(self) -> Scope:
        return self._limits("team")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord(_Account):
    email: str | None = None

    def limits(self) -> Scope:
        return self._limits("user")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord(_Account):
    key_hash: str
    key_prefix: str
    expires_at: int | None = None
    team_id: str | None = None
    user_id: str | None = None
    allowed_ips: tuple[str, ...] = ()
    role: str = "member"
    priority: str | None = None  # default priority of the key's calls; None = normal
    revoked_at: int | None = None
    previous_key_hash: str | None = None
    previous_valid_until: int | None = None

    def limits(self) -> Scope:
        return self._limits("key")

    def valid_until(self, via_previous: bool) -> int | None:
        """Until when (ms) the secret with this hash works; None = no end. Revoked keys never work."""
        end = self.expires_at
        if via_previous:
            grace = self.previous_valid_until or 0  # a previous secret without grace is dead
            end = grace if end is None else min(end, grace)
        return end

    def usable(self, via_previous: bool, now: int) -> bool:
        if self.revoked_at is not None:
            return False
        end = self.valid_until(via_previous)
        return end is None or now < end
