"""The admin operations, independent of HTTP: validate, change the store, audit, invalidate caches.

The HTTP handlers (routes.py) and `sluicegate keys ... --direct` both call this class, so a change
made either way is checked, audited and propagated the same way. Every change and its audit row
commit in one transaction; the cache invalidation is published after the commit (so no process
can reload the old row after hearing about the change).

Checks beyond what the request structs enforce: references (team_id, user_id, tier) must exist,
`soft_budget_usd` may not exceed `budget_usd`, `allowed_ips` must parse, `metadata` is bounded in
size and depth, and no string may contain NUL (Postgres cannot store it). Any failure is a 4xx
raised before the first write, so a refused request changes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from msgspec import UNSET
from sqlalchemy.exc import IntegrityError

from ...auth.keys import new_id
from ...auth.records import KeyRecord, TeamRecord, UserRecord, now_ms
from ...errors import ConflictError, InvalidRequestError, NotFoundError
from ...store import accounts, audit, keys, ledger, logs
from ...store.accounts import AccountKind
from ...store.db import Database
from .schemas import (
    AuditPage,
    Deleted,
    KeyCreate,
    KeyCreated,
    KeyOut,
    KeyPage,
    KeyUpdate,
    LogOut,
    LogPage,
    RotateIn,
    SpendReport,
    TeamCreate,
    TeamOut,
    TeamPage,
    TeamUpdate,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8

Invalidate = Callable[[str, str | None], Awaitable[bool]]


_LIMIT_FIELDS = (
    "alias",
    "models",
    "tier",
    "rpm",
    "tpm",
    "max_parallel",
    "budget_usd",
    "budget_period",
    "soft_budget_usd",
    "metadata",
    "log_bodies",
)


def ms_to_dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def dt_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _limits_out(record: KeyRecord | TeamRecord | UserRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "alias": record.alias,
        "models": list(record.models),
        "tier": record.tier,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "max_parallel": record.max_parallel,
        "budget_usd": record.budget_usd,
        "budget_period": record.budget_period,
        "soft_budget_usd": record.soft_budget_usd,
        "metadata": dict(record.metadata),
        "log_bodies": record.log_bodies,
        "created_at": ms_to_dt(record.created_at),
        "updated_at": ms_to_dt(record.updated_at),
    }


def _key_fields(record: KeyRecord) -> dict[str, Any]:
    now = now_ms()
    if record.revoked_at is not None:
        status = "revoked"
    elif record.expires_at is not None and record.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    grace = record.previous_valid_until if record.previous_key_hash else None
    return {
        **_limits_out(record),
        "key_prefix": record.key_prefix,
        "status": status,
        "expires_at": ms_to_dt(record.expires_at),
        "team_id": record.team_id,
        "user_id": record.user_id,
        "allowed_ips": list(record.allowed_ips),
        "role": record.role,
        "priority": record.priority,
        "revoked_at": ms_to_dt(record.revoked_at),
        "previous_valid_until": ms_to_dt(grace),
    }


def key_out(record: KeyRecord) -> KeyOut:
    return KeyOut(**_key_fields(record))


def team_out(record: TeamRecord) -> TeamOut:
    return TeamOut(**_limits_out(record))


def user_out(record: UserRecord) -> UserOut:
    return UserOut(**_limits_out(record), email=record.email)


def _account_out(record: TeamRecord | UserRecord) -> TeamOut | UserOut:
    return user_out(record) if isinstance(record, UserRecord) else team_out(record)


class AdminService:
    def __init__(
        self,
        db: Database,
        *,
        tiers: Mapping[str, Sequence[str]] | None = None,
        invalidate: Invalidate | None = None,
    ) -> None:
        self.db = db
        self.tiers = tiers or {}
        self._invalidate = invalidate

    async def _publish(self, kind: str, ident: str | None) -> None:
        if self._invalidate is not None:
            await self._invalidate(kind, ident)

    # -- keys ----------------------------------------------------------------------------------

    async def create_key(self, body: KeyCreate, *, actor: str, request_id: str | None = None) -> KeyCreated:
        values = self._changes(body, create=True)
        values.update(self._expiry(body.expires_at, body.ttl_s, create=True))
        for name in ("team_id", "user_id", "role", "priority"):
            values[name] = getattr(body, name)
        values["allowed_ips"] = _check_ips(body.allowed_ips)
        async with self.db.write() as conn:
            await self._check_refs(conn, body.team_id, body.user_id)
            record, secret = await keys.create_key(conn, values)
            await audit.append(
                conn,
                actor=actor,
                action="key.create",
                object_type="key",
                object_id=record.id,
                detail=_audit_values({**values, "key_prefix": record.key_prefix}),
                request_id=request_id,
            )
        return KeyCreated(**_key_fields(record), key=secret)

    async def list_keys(
        self,
        *,
        limit: int,
        cursor: str | None,
        team_id: str | None = None,
        user_id: str | None = None,
        include_revoked: bool = True,
    ) -> KeyPage:
        async with self.db.read() as conn:
            page, next_cursor = await keys.list_keys(
                conn,
                limit=limit,
                cursor=cursor,
                team_id=team_id,
                user_id=user_id,
                include_revoked=include_revoked,
            )
        return KeyPage(data=[key_out(k) for k in page], next_cursor=next_cursor)

    async def get_key(self, key_id: str) -> KeyOut:
        async with self.db.read() as conn:
            record = await keys.get_key(conn, key_id)
        if record is None:
            raise _missing("key", key_id)
        return key_out(record)

    async def update_key(
        self, key_id: str, body: KeyUpdate, *, actor: str, request_id: str | None = None
    ) -> KeyOut:
        changes = self._changes(body, create=False)
        if body.expires_at is not UNSET or body.ttl_s is not UNSET:
            expires_at = None if body.expires_at is UNSET else body.expires_at
            ttl_s = None if body.ttl_s is UNSET else body.ttl_s
            changes.update(self._expiry(expires_at, ttl_s, create=False))
        for name in ("team_id", "user_id", "role", "priority"):
            value = getattr(body, name)
            if value is not UNSET:
                changes[name] = value
        if body.allowed_ips is not UNSET:
            changes["allowed_ips"] = _check_ips(body.allowed_ips)
        async with self.db.write() as conn:
            current = await keys.get_key(conn, key_id)
            if current is None:
                raise _missing("key", key_id)
            if current.revoked_at is not None:
                raise ConflictError(f"key '{key_id}' is revoked; a revoked key cannot be changed")
            _check_budgets(current, changes)
            await self._check_refs(conn, changes.get("team_id"), changes.get("user_id"))
            record = await keys.update_key(conn, key_id, changes) if changes else current
            assert record is not None
            if changes:
                await audit.append(
                    conn,
                    actor=actor,
                    action="key.update",
                    object_type="key",
                    object_id=key_id,
                    detail=_audit_values(changes),
                    request_id=request_id,
                )
        if changes:
            await self._publish("key", key_id)
        return key_out(record)

    async def revoke_key(self, key_id: str, *, actor: str, request_id: str | None = None) -> KeyOut:
        async with self.db.write() as conn:
            found = await keys.revoke_key(conn, key_id)
            if found is None:
                raise _missing("key", key_id)
            record, changed = found
            if changed:
                await audit.append(
                    conn,
                    actor=actor,
                    action="key.revoke",
                    object_type="key",
                    object_id=key_id,
                    detail={},
                    request_id=request_id,
                )
        await self._publish("key", key_id)
        return key_out(record)

    async def rotate_key(
        self, key_id: str, body: RotateIn, *, actor: str, request_id: str | None = None
    ) -> KeyCreated:
        async with self.db.write() as conn:
            rotated = await keys.rotate_key(conn, key_id, body.grace_s)
            if rotated is None:
                if await keys.get_key(conn, key_id) is None:
                    raise _missing("key", key_id)
                raise ConflictError(f"key '{key_id}' is revoked; a revoked key cannot be rotated")
            record, secret = rotated
            await audit.append(
                conn,
                actor=actor,
                action="key.rotate",
                object_type="key",
                object_id=key_id,
                detail={"grace_s": body.grace_s, "key_prefix": record.key_prefix},
                request_id=request_id,
            )
        await self._publish("key", key_id)
        return KeyCreated(**_key_fields(record), key=secret)

    # -- teams and users -----------------------------------------------------------------------

    async def create_account(
        self,
        kind: AccountKind,
        body: TeamCreate | UserCreate,
        *,
        actor: str,
        request_id: str | None = None,
    ) -> TeamOut | UserOut:
        values = self._changes(body, create=True)
        values["id"] = body.id or new_id(kind)
        if isinstance(body, UserCreate):
            values["email"] = body.email
        try:
            async with self.db.write() as conn:
                if await accounts.get_account(conn, kind, values["id"]) is not None:
                    raise ConflictError(f"{kind} '{values['id']}' already exists", param="id")
                record = await accounts.create_account(conn, kind, values)
                await audit.append(
                    conn,
                    actor=actor,
                    action=f"{kind}.create",
                    object_type=kind,
                    object_id=record.id,
                    detail=_audit_values(values),
                    request_id=request_id,
                )
        except IntegrityError as exc:  # a concurrent create of the same id won the race
            raise ConflictError(f"{kind} '{values['id']}' already exists", param="id") from exc
        return _account_out(record)

    async def list_accounts(
        self, kind: AccountKind, *, limit: int, cursor: str | None
    ) -> TeamPage | UserPage:
        async with self.db.read() as conn:
            page, next_cursor = await accounts.list_accounts(conn, kind, limit=limit, cursor=cursor)
        if kind == "team":
            return TeamPage(
                data=[team_out(r) for r in page if isinstance(r, TeamRecord)], next_cursor=next_cursor
            )
        return UserPage(
            data=[user_out(r) for r in page if isinstance(r, UserRecord)], next_cursor=next_cursor
        )

    async def get_account(self, kind: AccountKind, account_id: str) -> TeamOut | UserOut:
        async with self.db.read() as conn:
            record = await accounts.get_account(conn, kind, account_id)
        if record is None:
            raise _missing(kind, account_id)
        return _account_out(record)

    async def update_account(
        self,
        kind: AccountKind,
        account_id: str,
        body: TeamUpdate | UserUpdate,
        *,
        actor: str,
        request_id: str | None = None,
    ) -> TeamOut | UserOut:
        changes = self._changes(body, create=False)
        if isinstance(body, UserUpdate) and body.email is not UNSET:
            changes["email"] = body.email
        async with self.db.write() as conn:
            current = await accounts.get_account(conn, kind, account_id)
            if current is None:
                raise _missing(kind, account_id)
            _check_budgets(current, changes)
            record = await accounts.update_account(conn, kind, account_id, changes) if changes else current
            assert record is not None
            if changes:
                await audit.append(
                    conn,
                    actor=actor,
                    action=f"{kind}.update",
                    object_type=kind,
                    object_id=account_id,
                    detail=_audit_values(changes),
                    request_id=request_id,
                )
        if changes:
            await self._publish(kind, account_id)
        return _account_out(record)

    async def delete_account(
        self, kind: AccountKind, account_id: str, *, actor: str, request_id: str | None = None
    ) -> Deleted:
        async with self.db.write() as conn:
            if await accounts.get_account(conn, kind, account_id) is None:
                raise _missing(kind, account_id)
            owner = {"team_id": account_id} if kind == "team" else {"user_id": account_id}
            active = await keys.count_active_keys(conn, **owner)
            if active:
                raise ConflictError(
                    f"{kind} '{account_id}' still has {active} active key(s); revoke them or move them "
                    f"to another {kind} first"
                )
            await accounts.delete_account(conn, kind, account_id)
            await audit.append(
                conn,
                actor=actor,
                action=f"{kind}.delete",
                object_type=kind,
                object_id=account_id,
                detail={},
                request_id=request_id,
            )
        await self._publish(kind, account_id)
        return Deleted(id=account_id, deleted=True)

    # -- reports -------------------------------------------------------------------------------

    async def spend(
        self, group_by: str, *, start: int | None, end: int | None, filters: Mapping[str, str]
    ) -> SpendReport:
        async with self.db.read() as conn:
            rows = await ledger.spend(conn, group_by, start=start, end=end, filters=filters)
        return SpendReport(data=rows, group_by=group_by, start=ms_to_dt(start), end=ms_to_dt(end))

    async def logs(self, filters: Mapping[str, Any], *, limit: int, cursor: str | None) -> LogPage:
        async with self.db.read() as conn:
            rows, next_cursor = await logs.query_logs(conn, filters=filters, limit=limit, cursor=cursor)
        return LogPage(data=[_log_out(r) for r in rows], next_cursor=next_cursor)

    async def log(self, request_id: str) -> LogOut:
        async with self.db.read() as conn:
            row = await logs.get_log(conn, request_id)
        if row is None:
            raise NotFoundError(f"no log row for request '{request_id}'")
        return _log_out(row)

    async def audit(
        self,
        *,
        limit: int,
        cursor: str | None,
        object_type: str | None = None,
        object_id: str | None = None,
        verify: bool = False,
    ) -> AuditPage:
        async with self.db.read() as conn:
            page, next_cursor = await audit.list_entries(
                conn, limit=limit, cursor=cursor, object_type=object_type, object_id=object_id
            )
            chain = await audit.verify(conn) if verify else None
        return AuditPage(data=page, next_cursor=next_cursor, chain=chain)

    # -- validation ----------------------------------------------------------------------------

    def _changes(self, body: msgspec.Struct, *, create: bool) -> dict[str, Any]:
        """The limit fields of a create (all) or patch (those sent) body, validated, as column values."""
        _check_strings(msgspec.to_builtins(body))
        out: dict[str, Any] = {}
        for name in _LIMIT_FIELDS:
            value = getattr(body, name)
            if value is UNSET:
                continue
            out[name] = value
        if out.get("budget_period") == "lifetime":
            out["budget_period"] = None
        if "metadata" in out:
            _check_metadata(out["metadata"])
        tier = out.get("tier")
        if tier is not None and tier not in self.tiers:
            known = ", ".join(sorted(self.tiers)) or "none configured"
            raise InvalidRequestError(f"tier: unknown tier '{tier}' (known: {known})", param="tier")
        if create:
            _check_budgets(None, out)
        return out

    @staticmethod
    def _expiry(expires_at: datetime | None, ttl_s: float | None, *, create: bool) -> dict[str, Any]:
        if expires_at is not None and ttl_s is not None:
            raise InvalidRequestError("send either expires_at or ttl_s, not both", param="ttl_s")
        now = now_ms()
        if ttl_s is not None:
            return {"expires_at": now + int(ttl_s * 1000)}
        if expires_at is None:
            return {"expires_at": None}
        ms = dt_to_ms(expires_at)
        if create and ms <= now:
            raise InvalidRequestError("expires_at: is in the past", param="expires_at")
        return {"expires_at": ms}

    @staticmethod
    async def _check_refs(conn: Any, team_id: str | None, user_id: str | None) -> None:
        if team_id is not None and await accounts.get_account(conn, "team", team_id) is None:
            raise InvalidRequestError(f"team_id: no team '{team_id}'", param="team_id")
        if user_id is not None and await accounts.get_account(conn, "user", user_id) is None:
            raise InvalidRequestError(f"user_id: no user '{user_id}'", param="user_id")


def _missing(kind: str, ident: str) -> NotFoundError:
    return NotFoundError(f"no {kind} '{ident}'")


def _check_budgets(current: KeyRecord | TeamRecord | UserRecord | None, changes: Mapping[str, Any]) -> None:
    hard = changes["budget_usd"] if "budget_usd" in changes else getattr(current, "budget_usd", None)
    soft = (
        changes["soft_budget_usd"]
        if "soft_budget_usd" in changes
        else getattr(current, "soft_budget_usd", None)
    )
    if hard is not None and soft is not None and soft > hard:
        raise InvalidRequestError(
            f"soft_budget_usd: {soft:g} is above budget_usd {hard:g} "
            "(the soft limit alerts before the hard one refuses)",
            param="soft_budget_usd",
        )


def _check_ips(values: list[str]) -> list[str]:
    out = []
    for index, value in enumerate(values):
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError as exc:
            raise InvalidRequestError(
                f"allowed_ips[{index}]: {value!r} is not an IP address or CIDR network",
                param=f"allowed_ips[{index}]",
            ) from exc
    return out


def _check_metadata(metadata: dict[str, Any]) -> None:
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        raise InvalidRequestError(f"metadata: larger than {MAX_METADATA_BYTES} bytes", param="metadata")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise InvalidRequestError(
            f"metadata: nested deeper than {MAX_METADATA_DEPTH} levels", param="metadata"
        )


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_strings(value: Any, path: str = "") -> None:
    """No NUL characters anywhere: Postgres text cannot hold them, and no legitimate value needs one."""
    if isinstance(value, str):
        if "\x00" in value:
            field = path.lstrip(".") or "body"
            raise InvalidRequestError(f"{field}: contains a NUL character", param=field)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k, f"{path}.{k}")
            _check_strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{path}[{i}]")


def _audit_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit row records of a change: the stored values (never a secret or a hash)."""
    return {k: v for k, v in values.items() if k not in ("key_hash", "previous_key_hash")}


def _log_out(row: Mapping[str, Any]) -> LogOut:
    fields = {k: v for k, v in row.items() if k in LogOut.__struct_fields__}
    fields["ts"] = ms_to_dt(row["ts"])
    fields["tags"] = list(row.get("tags") or [])
    return LogOut(**fields)
