"""Virtual keys in the database: create (the secret is returned once), find, list, update, revoke, rotate.

Only the SHA-256 of a secret is stored (auth/keys.py). Rotation keeps the replaced hash in
`previous_key_hash` until `previous_valid_until`, so clients can switch over during a grace period;
a second rotation within the grace period ends the first one's grace (one previous secret at most).
Revocation stamps `revoked_at` and keeps the row for spend and audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.keys import display_prefix, generate_secret, hash_secret, new_id
from ..auth.records import KeyRecord, TeamRecord, UserRecord, now_ms
from .accounts import account_fields, team_from, user_from
from .paging import decode_cursor, encode_cursor
from .schema import api_keys, teams, users

_DEFAULTS: Mapping[str, Any] = {
    "models": [],
    "metadata": {},
    "allowed_ips": [],
    "log_bodies": False,
    "role": "member",
}

_team = teams.alias("t")
_user = users.alias("u")
# One round trip resolves a secret: the key row with its user and team (outer joins).
_AUTH_COLUMNS = [
    *api_keys.c,
    *(c.label(f"u__{c.name}") for c in _user.c),
    *(c.label(f"t__{c.name}") for c in _team.c),
]
_AUTH_FROM = api_keys.outerjoin(_user, _user.c.id == api_keys.c.user_id).outerjoin(
    _team, _team.c.id == api_keys.c.team_id
)


def key_from(row: Mapping[Any, Any]) -> KeyRecord:
    return KeyRecord(
        **account_fields(row),
        key_hash=row["key_hash"],
        key_prefix=row["key_prefix"],
        expires_at=row["expires_at"],
        team_id=row["team_id"],
        user_id=row["user_id"],
        allowed_ips=tuple(row["allowed_ips"] or ()),
        role=row["role"],
        priority=row["priority"],
        revoked_at=row["revoked_at"],
        previous_key_hash=row["previous_key_hash"],
        previous_valid_until=row["previous_valid_until"],
    )


def _key(row: Row[Any]) -> KeyRecord:
    return key_from(row._mapping)


async def create_key(conn: AsyncConnection, values: Mapping[str, Any]) -> tuple[KeyRecord, str]:
    """Insert a key; returns the record and the secret (the only time the secret exists)."""
    secret = generate_secret()
    now = now_ms()
    row = {
        **_DEFAULTS,
        **values,
        "id": new_id("key"),
        "key_hash": hash_secret(secret),
        "key_prefix": display_prefix(secret),
        "created_at": now,
        "updated_at": now,
    }
    result = await conn.execute(insert(api_keys).values(row).returning(*api_keys.c))
    return _key(result.one()), secret


async def get_key(conn: AsyncConnection, key_id: str) -> KeyRecord | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return _key(row) if row is not None else None


class AuthRow:
    """A key found by the hash of a secret, with its user and team; `via_previous` = the old secret."""

    __slots__ = ("key", "team", "user", "via_previous")

    def __init__(
        self, key: KeyRecord, user: UserRecord | None, team: TeamRecord | None, via_previous: bool
    ) -> None:
        self.key = key
        self.user = user
        self.team = team
        self.via_previous = via_previous


async def load_for_auth(conn: AsyncConnection, key_hash: str) -> AuthRow | None:
    """The key whose current or previous secret hashes to `key_hash`, or None."""
    stmt = (
        select(*_AUTH_COLUMNS)
        .select_from(_AUTH_FROM)
        .where(or_(api_keys.c.key_hash == key_hash, api_keys.c.previous_key_hash == key_hash))
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    mapping = row._mapping
    key = key_from(mapping)
    user = user_from(_prefixed(mapping, "u__")) if mapping["u__id"] is not None else None
    team = team_from(_prefixed(mapping, "t__")) if mapping["t__id"] is not None else None
    return AuthRow(key, user, team, via_previous=key.key_hash != key_hash)


def _prefixed(mapping: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
    return {name[len(prefix) :]: value for name, value in mapping.items() if name.startswith(prefix)}


async def list_keys(
    conn: AsyncConnection,
    *,
    limit: int,
    cursor: str | None = None,
    team_id: str | None = None,
    user_id: str | None = None,
    include_revoked: bool = True,
) -> tuple[list[KeyRecord], str | None]:
    stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id).limit(limit + 1)
    if team_id is not None:
        stmt = stmt.where(api_keys.c.team_id == team_id)
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    if not include_revoked:
        stmt = stmt.where(api_keys.c.revoked_at.is_(None))
    if cursor is not None:
        created, last_id = decode_cursor(cursor, (int, str))
        stmt = stmt.where(tuple_(api_keys.c.created_at, api_keys.c.id) > tuple_(created, last_id))
    rows = (await conn.execute(stmt)).all()
    page = [_key(r) for r in rows[:limit]]
    more = len(rows) > limit
    return page, encode_cursor(page[-1].created_at, page[-1].id) if more and page else None


async def count_active_keys(
    conn: AsyncConnection, *, team_id: str | None = None, user_id: str | None = None
) -> int:
    stmt = select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
    if team_id is not None:
        stmt = stmt.where(api_keys.c.team_id == team_id)
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    return int((await conn.execute(stmt)).scalar_one())


async def update_key(conn: AsyncConnection, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
    stmt = (
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values({**changes, "updated_at": now_ms()})
        .returning(*api_keys.c)
    )
    row = (await conn.execute(stmt)).first()
    return _key(row) if row is not None else None


async def revoke_key(conn: AsyncConnection, key_id: str) -> tuple[KeyRecord, bool] | None:
    """Revoke a key; returns (record, whether this call revoked it) or None if there is no such key."""
    now = now_ms()
    stmt = (
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now, updated_at=now)
        .returning(*api_keys.c)
    )
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return _key(row), True
    existing = await get_key(conn, key_id)
    return (existing, False) if existing is not None else None


async def rotate_key(conn: AsyncConnection, key_id: str, grace_s: float) -> tuple[KeyRecord, str] | None:
    """Give a live key a new secret; the old one keeps working for `grace_s` seconds (0 = none).

    None if the key does not exist or is revoked.
    """
    secret = generate_secret()
    now = now_ms()
    grace = grace_s > 0
    stmt = (
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(
            # The right-hand side reads the row as it was: previous_key_hash gets the old hash.
            previous_key_hash=api_keys.c.key_hash if grace else None,
            previous_valid_until=now + int(grace_s * 1000) if grace else None,
            key_hash=hash_secret(secret),
            key_prefix=display_prefix(secret),
            updated_at=now,
        )
        .returning(*api_keys.c)
    )
    row = (await conn.execute(stmt)).first()
    return (_key(row), secret) if row is not None else None
