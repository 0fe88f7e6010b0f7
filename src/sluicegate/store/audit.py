"""The append-only, hash-chained audit log of admin changes (SPEC §10).

Row n stores `prev_hash` (row n-1's hash; 64 zeros for the first) and
`hash = sha256(JSON [seq, ts, actor, action, object_type, object_id, request_id, detail, prev_hash])`,
with `detail` the exact canonical JSON text stored. Changing, deleting or reordering any row breaks
the chain at that row, which `verify` reports. (Someone who can rewrite every later row can forge a
new chain; keep a copy of the head hash elsewhere if that is your threat model — `GET
/admin/audit?verify=true` returns it.)

Appends are serialised so the chain never forks: on Postgres by a transaction-scoped advisory lock,
on SQLite by the write transaction itself (`BEGIN IMMEDIATE`). `seq` is the primary key, so even an
unserialised race would fail loudly rather than branch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.records import now_ms
from .paging import decode_cursor, encode_cursor
from .schema import audit_log

GENESIS = "0" * 64
_PG_LOCK_ID = 0x51_1CE_A0D17
_VERIFY_PAGE = 1000


class AuditEntry(msgspec.Struct, kw_only=True):
    seq: int
    ts: int
    actor: str
    action: str
    object_type: str
    object_id: str | None
    request_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class ChainCheck(msgspec.Struct, kw_only=True):
    ok: bool
    rows: int
    head: str  # hash of the last row (GENESIS when empty)
    first_bad_seq: int | None = None
    reason: str | None = None


def canonical(detail: Mapping[str, Any]) -> str:
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def row_hash(
    seq: int,
    ts: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | None,
    request_id: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    # A JSON array frames the fields unambiguously (no "ab"+"c" == "a"+"bc" collisions).
    content = orjson.dumps([seq, ts, actor, action, object_type, object_id, request_id, detail, prev_hash])
    return hashlib.sha256(content).hexdigest()


async def append(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | None,
    detail: Mapping[str, Any],
    request_id: str | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (so the change and its record commit together)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    last = (
        await conn.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        )
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
    ts = now_ms()
    detail_text = canonical(detail)
    digest = row_hash(seq, ts, actor, action, object_type, object_id, request_id, detail_text, prev)
    values = {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "request_id": request_id,
        "detail": detail_text,
        "prev_hash": prev,
        "hash": digest,
    }
    await conn.execute(insert(audit_log).values(values))
    return _entry(values)


def _entry(row: Mapping[Any, Any]) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        ts=row["ts"],
        actor=row["actor"],
        action=row["action"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        request_id=row["request_id"],
        detail=orjson.loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


async def list_entries(
    conn: AsyncConnection,
    *,
    limit: int,
    cursor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """Newest first; filter by object type and id."""
    stmt = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit + 1)
    if object_type is not None:
        stmt = stmt.where(audit_log.c.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(audit_log.c.object_id == object_id)
    if cursor is not None:
        (before,) = decode_cursor(cursor, (int,))
        stmt = stmt.where(audit_log.c.seq < before)
    rows = (await conn.execute(stmt)).all()
    page = [_entry(r._mapping) for r in rows[:limit]]
    return page, encode_cursor(page[-1].seq) if len(rows) > limit and page else None


async def verify(conn: AsyncConnection) -> ChainCheck:
    """Walk the whole chain in order; report the first row whose link or hash does not hold."""
    prev, expected_seq, count = GENESIS, 1, 0
    while True:
        stmt = select(audit_log).where(audit_log.c.seq >= expected_seq).order_by(audit_log.c.seq)
        rows = (await conn.execute(stmt.limit(_VERIFY_PAGE))).all()
        for row in rows:
            r = row._mapping
            problem = None
            if r["seq"] != expected_seq:
                problem = f"row {expected_seq} is missing"
            elif r["prev_hash"] != prev:
                problem = "prev_hash does not match the previous row's hash"
            else:
                fields = (r["seq"], r["ts"], r["actor"], r["action"], r["object_type"], r["object_id"])
                if row_hash(*fields, r["request_id"], r["detail"], r["prev_hash"]) != r["hash"]:
                    problem = "content does not match its hash"
            if problem is not None:
                return ChainCheck(ok=False, rows=count, head=prev, first_bad_seq=expected_seq, reason=problem)
            prev, expected_seq, count = r["hash"], expected_seq + 1, count + 1
        if len(rows) < _VERIFY_PAGE:
            return ChainCheck(ok=True, rows=count, head=prev)
