"""The caller of a request, as every later pipeline step sees it.

A caller is either the master key (`MASTER`, admin, no limits) or a virtual key resolved with its
user and team into the same `Principal`: the merged model allowlist, the role, the client address
allowlist, and one limits-engine `Scope` per scope (key, user, team) whose limits and budgets the call must
pass. The master key is recognised first, with one constant-time comparison and no await, so its
path is as fast as before virtual keys existed.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AuthenticationError, ModelNotAllowedError, PermissionDeniedError
from ..limits.base import Scope
from .records import KeyRecord, TeamRecord, UserRecord

if TYPE_CHECKING:
    from .cache import KeyCache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "master" | "virtual"
    key_id: str | None = None
    is_admin: bool = False
    allowed_models: frozenset[str] | None = None  # None = every model
    team_id: str | None = None
    user_id: str | None = None
    role: str | None = None  # admin | team_admin | member | viewer (SPEC §10)
    # Limits and budgets to pass, one per scope that exists: key, then user, then team.
    scopes: tuple[Scope, ...] = ()
    allowed_ips: tuple[IPNetwork, ...] | None = None  # None = any client address
    log_bodies: bool = False  # key, user or team asked for request/response bodies in the log
    priority: str | None = None  # the key's default priority (high | normal | low); None = normal

    def check_model(self, model: str) -> None:
        if self.allowed_models is not None and model not in self.allowed_models:
            raise ModelNotAllowedError(f"this key is not allowed to use model '{model}'", param="model")

    def check_ip(self, client: str | None) -> None:
        """Refuse (403) a client address outside the key's `allowed_ips`; no-op without a list."""
        networks = self.allowed_ips
        if networks is None:
            return
        try:
            address = ipaddress.ip_address(client) if client else None
        except ValueError:
            address = None
        if address is None or not any(address in net for net in networks):
            raise PermissionDeniedError(
                f"this key may not be used from address {client or 'unknown'}", code="ip_not_allowed"
            )


MASTER = Principal(kind="master", key_id="master", is_admin=True, role="admin")


def principal_for(
    key: KeyRecord,
    user: UserRecord | None,
    team: TeamRecord | None,
    tiers: Mapping[str, Sequence[str]],
) -> Principal:
    """Resolve a key with its user and team: every scope's allowlist must allow a model."""
    allowed: frozenset[str] | None = None
    scopes: list[Scope] = [key.limits()]
    for account in (key, user, team):
        if account is None:
            continue
        scope_allowed = account.allowlist(tiers)
        if scope_allowed is not None:
            allowed = scope_allowed if allowed is None else allowed & scope_allowed
    if user is not None:
        scopes.append(user.limits())
    if team is not None:
        scopes.append(team.limits())
    networks = tuple(ipaddress.ip_network(n, strict=False) for n in key.allowed_ips) or None
    return Principal(
        kind="virtual",
        key_id=key.id,
        is_admin=key.role == "admin",
        allowed_models=allowed,
        team_id=key.team_id,
        user_id=key.user_id,
        role=key.role,
        scopes=tuple(scopes),
        allowed_ips=networks,
        log_bodies=key.log_bodies or bool(user and user.log_bodies) or bool(team and team.log_bodies),
        priority=key.priority,
    )


def extract_key(authorization: bytes | None, x_api_key: bytes | None) -> str | None:
    """The caller's key from `Authorization: Bearer <key>` or `x-api-key: <key>` (Anthropic style)."""
    if authorization:
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return value.strip().decode("latin-1")
    if x_api_key:
        return x_api_key.strip().decode("latin-1")
    return None


_MISSING = "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
_INVALID = "invalid, revoked or expired API key"


class Authenticator:
    def __init__(self, master_key: str | None, keys: KeyCache | None = None) -> None:
        self._master = master_key.encode() if master_key else None
        self._keys = keys

    def authenticate(self, key: str | None) -> Principal:
        """The master key only, synchronously (callers not yet moved to `resolve`)."""
        if key is None:
            raise AuthenticationError(_MISSING)
        # Constant-time comparison: a key check must not leak how many leading bytes matched.
        if self._master is not None and hmac.compare_digest(key.encode("latin-1"), self._master):
            return MASTER
        raise AuthenticationError("invalid API key")

    async def resolve(self, key: str | None, client: tuple[str, int] | None = None) -> Principal:
        """The master key or a virtual key (from the key cache); 401 otherwise.

        `client` is the ASGI `scope["client"]`; a key with `allowed_ips` is refused (403) from any
        other address.
        """
        if key is None:
            raise AuthenticationError(_MISSING)
        if self._master is not None and hmac.compare_digest(key.encode("latin-1"), self._master):
            return MASTER
        cache = self._keys
        if cache is None:
            raise AuthenticationError("invalid API key")
        principal = cache.peek(key) or await cache.resolve(key)
        if principal is None:
            raise AuthenticationError(_INVALID)
        if principal.allowed_ips is not None:
            principal.check_ip(client[0] if client else None)
        return principal
