"""The spend ledger: one row per finished call, keyed by request id, and every aggregate derived from it.

Writes are idempotent: a batch is multi-row INSERT ... ON CONFLICT (request_id) DO NOTHING on
both dialects, so a writer that retries after an ambiguous failure (timeout during commit) can never
count a call twice. Aggregates (`spend`, `spent_since`) are plain GROUP BY / SUM over the ledger:
there is no second counter that could drift from it.

`claim_budget_alert` lets exactly one process, across all replicas, send a period's soft-budget alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import orjson
from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.records import now_ms
from .db import dialect_insert
from .schema import budget_alerts, ledger

GroupBy = Literal["key", "user", "team", "model", "provider", "day"]
GROUP_BY: tuple[str, ...] = ("key", "user", "team", "model", "provider", "day")
DAY_MS = 86_400_000


class LedgerRow(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One finished call, as billed. `ts` is milliseconds since the epoch (call end)."""

    request_id: str
    ts: int
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    model: str | None = None
    provider: str | None = None
    deployment: str | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    usage_source: Literal["provider", "counted"] = "provider"
    status: int = 200
    partial: bool = False
    duration_ms: float = 0.0
    tags: list[str] = msgspec.field(default_factory=list)


class SpendGroup(msgspec.Struct, kw_only=True):
    """One line of `GET /admin/spend` (SPEC §4)."""

    group: str | None
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: float


def _as_values(rows: Sequence[msgspec.Struct]) -> list[dict[str, Any]]:
    return [msgspec.structs.asdict(r) for r in rows]


async def insert_ledger_rows(conn: AsyncConnection, rows: Sequence[LedgerRow]) -> int:
    """Insert rows, skipping request ids already present; returns how many were new."""
    return await insert_idempotent(conn, ledger, "request_id", _as_values(rows))


async def insert_idempotent(
    conn: AsyncConnection, table: Table, pk: str, values: list[dict[str, Any]]
) -> int:
    """INSERT ... ON CONFLICT (pk) DO NOTHING RETURNING pk for many rows; the count of rows inserted.

    Executed as one statement with a parameter list: SQLAlchemy's "insertmanyvalues" renders it
    as multi-row VALUES pages sized under each driver's parameter limit, an order of magnitude
    faster than compiling a `.values([...])` statement per batch. RETURNING lists only the rows
    that were new, which is how duplicates are counted on both dialects.
    """
    if not values:
        return 0
    stmt = dialect_insert(conn, table).on_conflict_do_nothing(index_elements=[pk]).returning(table.c[pk])
    result = await conn.execute(stmt, values)
    return len(result.all())


# Rows per multi-row INSERT on SQLite (the statement is compiled once per size; 256 x 25 columns
# stays far below SQLite's 32,766 bound parameters).
_SQLITE_CHUNK = 256
_FAST_SQL: dict[tuple[str, str, int], str] = {}


def _insert_sql(table: Table, dialect: str, fields: tuple[str, ...], rows: int) -> str:
    sql = _FAST_SQL.get((table.name, dialect, rows))
    if sql is None:
        columns = ", ".join(fields)
        if dialect == "sqlite":
            one = "(" + ", ".join("?" for _ in fields) + ")"
            values = ", ".join(one for _ in range(rows))
        else:  # asyncpg's numeric placeholders, one row per statement (executemany pipelines them)
            values = "(" + ", ".join(f"${i}" for i in range(1, len(fields) + 1)) + ")"
        sql = f"INSERT INTO {table.name} ({columns}) VALUES {values} ON CONFLICT (request_id) DO NOTHING"
        if len(_FAST_SQL) < 64:
            _FAST_SQL[(table.name, dialect, rows)] = sql
    return sql


async def insert_batch(conn: AsyncConnection, table: Table, rows: Sequence[msgspec.Struct]) -> None:
    """The writer's bulk path: INSERT ... ON CONFLICT (request_id) DO NOTHING for many rows at once.

    Rows go to the driver as plain values (msgspec `astuple`, in the struct's field order), so the
    event loop does about a microsecond of work per row (SQLAlchemy's per-row parameter processing
    cost ten times that on the loop's thread, which is the gateway's request path). On SQLite the
    rows are sent as multi-row VALUES statements: one `sqlite3_step` per 256 rows. An executemany
    would step once per row, and the driver thread gives up and re-takes the GIL at every step,
    which behind a busy event loop made a 1,000-row batch take half a second. On Postgres asyncpg
    pipelines an executemany in one round trip.
    """
    if not rows:
        return
    fields: tuple[str, ...] = type(rows[0]).__struct_fields__
    tags = fields.index("tags")
    astuple = msgspec.structs.astuple
    params = []
    for row in rows:
        values = astuple(row)
        tag_list = values[tags]
        params.append(
            (*values[:tags], orjson.dumps(tag_list).decode() if tag_list else "[]", *values[tags + 1 :])
        )
    dialect = conn.dialect.name
    if dialect != "sqlite":
        await conn.exec_driver_sql(_insert_sql(table, dialect, fields, 1), params)
        return
    start = 0
    while start < len(params):
        size = _chunk_size(len(params) - start)
        chunk = params[start : start + size]
        flat = tuple(value for values in chunk for value in values)
        await conn.exec_driver_sql(_insert_sql(table, dialect, fields, size), flat)
        start += size


def _chunk_size(remaining: int) -> int:
    """The largest power of two ≤ `remaining`, capped at `_SQLITE_CHUNK`.

    Only 9 statement shapes per table ever exist (256, 128, …, 1 rows). One shape per batch size
    made the driver's per-connection prepared-statement cache hold up to 128 statements of
    thousands of parameters each: tens of MB of RSS after a burst (SPEC §9: ≤ 80 MB per worker).
    """
    if remaining >= _SQLITE_CHUNK:
        return _SQLITE_CHUNK
    return 1 << (remaining.bit_length() - 1)


def _group_column(group_by: str) -> ColumnElement[Any]:
    columns: Mapping[str, ColumnElement[Any]] = {
        "key": ledger.c.key_id,
        "user": ledger.c.user_id,
        "team": ledger.c.team_id,
        "model": ledger.c.model,
        "provider": ledger.c.provider,
        # Integer division on an integer column: whole UTC days since the epoch on both dialects.
        "day": ledger.c.ts // DAY_MS,
    }
    if group_by not in columns:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")
    return columns[group_by]


async def spend(
    conn: AsyncConnection,
    group_by: str,
    *,
    start: int | None = None,
    end: int | None = None,
    filters: Mapping[str, str] | None = None,
) -> list[SpendGroup]:
    """Spend per group over [start, end) (ms; None = unbounded), optionally within one key/user/team/model.

    Days come out as `YYYY-MM-DD` (UTC) in date order; other groups by cost, highest first.
    """
    group = _group_column(group_by).label("grp")
    cost = func.coalesce(func.sum(ledger.c.cost_usd), 0.0).label("cost")
    stmt = select(
        group,
        func.count().label("requests"),
        func.coalesce(func.sum(ledger.c.input_tokens), 0),
        func.coalesce(func.sum(ledger.c.cached_tokens), 0),
        func.coalesce(func.sum(ledger.c.output_tokens), 0),
        cost,
    ).group_by(group)
    stmt = stmt.where(*_range(start, end), *_filters(filters))
    stmt = stmt.order_by(group) if group_by == "day" else stmt.order_by(cost.desc(), group)
    out = []
    for grp, requests, input_tokens, cached_tokens, output_tokens, cost_usd in (
        await conn.execute(stmt)
    ).all():
        label = _day(int(grp)) if group_by == "day" and grp is not None else grp
        out.append(
            SpendGroup(
                group=label,
                requests=int(requests),
                input_tokens=int(input_tokens),
                cached_tokens=int(cached_tokens),
                output_tokens=int(output_tokens),
                cost_usd=float(cost_usd),
            )
        )
    return out


def _day(days: int) -> str:
    return datetime.fromtimestamp(days * 86_400, tz=UTC).strftime("%Y-%m-%d")


def _range(start: int | None, end: int | None) -> list[ColumnElement[bool]]:
    clauses = []
    if start is not None:
        clauses.append(ledger.c.ts >= start)
    if end is not None:
        clauses.append(ledger.c.ts < end)
    return clauses


_FILTER_COLUMNS = {"key_id", "user_id", "team_id", "model", "provider"}


def _filters(filters: Mapping[str, str] | None) -> list[ColumnElement[bool]]:
    clauses = []
    for name, value in (filters or {}).items():
        if name not in _FILTER_COLUMNS:
            raise ValueError(f"unknown spend filter {name!r}")
        clauses.append(ledger.c[name] == value)
    return clauses


_SCOPE_COLUMNS = {"key": "key_id", "user": "user_id", "team": "team_id", "model": "model"}


async def spent_since(conn: AsyncConnection, scope_kind: str, scope_id: str, since: int | None) -> float:
    """Dollars spent by a key/user/team/model since `since` (ms; None = ever): seeds budget counters."""
    column = ledger.c[_SCOPE_COLUMNS[scope_kind]]
    stmt = select(func.coalesce(func.sum(ledger.c.cost_usd), 0.0)).where(column == scope_id)
    if since is not None:
        stmt = stmt.where(ledger.c.ts >= since)
    return float((await conn.execute(stmt)).scalar_one())


async def claim_budget_alert(
    conn: AsyncConnection, scope_kind: str, scope_id: str, period_start: int
) -> bool:
    """True for exactly one caller per (scope, period): that caller sends the soft-budget alert.

    `period_start` is any number that names the period (the limits engine's Unix-seconds period
    start; 0 for lifetime budgets).
    """
    values = [
        {"scope_kind": scope_kind, "scope_id": scope_id, "period_start": period_start, "sent_at": now_ms()}
    ]
    stmt = dialect_insert(conn, budget_alerts).values(values).on_conflict_do_nothing()
    return (await conn.execute(stmt)).rowcount == 1
