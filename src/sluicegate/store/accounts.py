"""Teams and users: create, read, list, update, delete (on a connection the caller's transaction owns).

Values arrive validated by the admin layer, keyed by column name. Functions take an
`AsyncConnection` so that a change and its audit row commit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import Row, Table, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.records import TeamRecord, UserRecord, now_ms
from .paging import decode_cursor, encode_cursor
from .schema import teams, users

AccountKind = Literal["team", "user"]
Account = TeamRecord | UserRecord
TABLES: Mapping[str, Table] = {"team": teams, "user": users}

_DEFAULTS: Mapping[str, Any] = {"models": [], "metadata": {}, "log_bodies": False}


def account_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Record fields common to keys, users and teams, from a row mapping (prefix-free names)."""
    return {
        "id": row["id"],
        "alias": row["alias"],
        "models": tuple(row["models"] or ()),
        "tier": row["tier"],
        "rpm": row["rpm"],
        "tpm": row["tpm"],
        "max_parallel": row["max_parallel"],
        "budget_usd": row["budget_usd"],
        "budget_period": row["budget_period"],
        "soft_budget_usd": row["soft_budget_usd"],
        "metadata": row["metadata"] or {},
        "log_bodies": bool(row["log_bodies"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def team_from(row: Mapping[Any, Any]) -> TeamRecord:
    return TeamRecord(**account_fields(row))


def user_from(row: Mapping[Any, Any]) -> UserRecord:
    return UserRecord(**account_fields(row), email=row["email"])


def _record(kind: AccountKind, row: Row[Any]) -> Account:
    mapping = row._mapping
    return team_from(mapping) if kind == "team" else user_from(mapping)


async def create_account(conn: AsyncConnection, kind: AccountKind, values: Mapping[str, Any]) -> Account:
    """Insert a team or user (`values` must hold `id`); IntegrityError if the id exists."""
    table = TABLES[kind]
    now = now_ms()
    row = {**_DEFAULTS, **values, "created_at": now, "updated_at": now}
    result = await conn.execute(insert(table).values(row).returning(*table.c))
    return _record(kind, result.one())


async def get_account(conn: AsyncConnection, kind: AccountKind, account_id: str) -> Account | None:
    table = TABLES[kind]
    row = (await conn.execute(select(table).where(table.c.id == account_id))).first()
    return _record(kind, row) if row is not None else None


async def list_accounts(
    conn: AsyncConnection, kind: AccountKind, *, limit: int, cursor: str | None
) -> tuple[list[Account], str | None]:
    """One page in creation order; the cursor continues after the last row."""
    table = TABLES[kind]
    stmt = select(table).order_by(table.c.created_at, table.c.id).limit(limit + 1)
    if cursor is not None:
        created, last_id = decode_cursor(cursor, (int, str))
        stmt = stmt.where(tuple_(table.c.created_at, table.c.id) > tuple_(created, last_id))
    rows = (await conn.execute(stmt)).all()
    page = [_record(kind, r) for r in rows[:limit]]
    more = len(rows) > limit
    return page, encode_cursor(page[-1].created_at, page[-1].id) if more and page else None


async def update_account(
    conn: AsyncConnection, kind: AccountKind, account_id: str, changes: Mapping[str, Any]
) -> Account | None:
    table = TABLES[kind]
    stmt = (
        update(table)
        .where(table.c.id == account_id)
        .values({**changes, "updated_at": now_ms()})
        .returning(*table.c)
    )
    row = (await conn.execute(stmt)).first()
    return _record(kind, row) if row is not None else None


async def delete_account(conn: AsyncConnection, kind: AccountKind, account_id: str) -> bool:
    table = TABLES[kind]
    result = await conn.execute(delete(table).where(table.c.id == account_id))
    return bool(result.rowcount)
