"""The request log: one row per finished call (idempotent on request id), browsed newest first.

Bodies are stored only when the caller's key, user or team has `log_bodies` on, and arrive here
already redacted (`redact_body`): the store never sees a secret it would have to hide later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import orjson
from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from .ledger import insert_idempotent
from .paging import decode_cursor, encode_cursor
from .schema import request_log


class LogRow(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One finished call as seen at the edge. `ts` is milliseconds since the epoch (call end)."""

    request_id: str
    ts: int
    endpoint: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    provider: str | None = None
    deployment: str | None = None
    status_code: int = 200
    error_code: str | None = None
    stream: bool = False
    latency_ms: float = 0.0
    overhead_ms: float | None = None
    ttft_ms: float | None = None
    attempts: int = 1
    cache: str | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    usage_source: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    request_body: str | None = None
    response_body: str | None = None


async def insert_log_rows(conn: AsyncConnection, rows: Sequence[LogRow]) -> int:
    """Insert rows, skipping request ids already present; returns how many were new."""
    values = [msgspec.structs.asdict(r) for r in rows]
    return await insert_idempotent(conn, request_log, "request_id", values)


_FILTERS = ("key_id", "team_id", "user_id", "model", "deployment")
_LIST_COLUMNS = [c for c in request_log.c if c.name not in ("request_body", "response_body")]


async def query_logs(
    conn: AsyncConnection,
    *,
    filters: Mapping[str, Any],
    limit: int,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of log rows, newest first, without bodies; and the cursor of the next page.

    `filters`: equality on key_id/team_id/user_id/model/deployment; `status` an HTTP status or
    "ok" (< 400) / "error" (>= 400); `start`/`end` a [start, end) range in ms.
    """
    stmt = select(*_LIST_COLUMNS).order_by(request_log.c.ts.desc(), request_log.c.request_id.desc())
    stmt = stmt.where(*_where(filters)).limit(limit + 1)
    if cursor is not None:
        ts, request_id = decode_cursor(cursor, (int, str))
        stmt = stmt.where(tuple_(request_log.c.ts, request_log.c.request_id) < tuple_(ts, request_id))
    rows = [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
    page = rows[:limit]
    more = len(rows) > limit
    return page, encode_cursor(page[-1]["ts"], page[-1]["request_id"]) if more and page else None


def _where(filters: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name in _FILTERS:
            clauses.append(request_log.c[name] == value)
        elif name == "status":
            if value == "ok":
                clauses.append(request_log.c.status_code < 400)
            elif value == "error":
                clauses.append(request_log.c.status_code >= 400)
            else:
                clauses.append(request_log.c.status_code == int(value))
        elif name == "start":
            clauses.append(request_log.c.ts >= value)
        elif name == "end":
            clauses.append(request_log.c.ts < value)
        else:
            raise ValueError(f"unknown log filter {name!r}")
    return clauses


async def get_log(conn: AsyncConnection, request_id: str) -> dict[str, Any] | None:
    """One log row with its bodies (if they were logged)."""
    row = (await conn.execute(select(request_log).where(request_log.c.request_id == request_id))).first()
    return dict(row._mapping) if row is not None else None


# Field names whose values are credentials wherever they appear in a logged body.
_SECRET_FIELDS = re.compile(
    r"(?i)^(api[_-]?key|authorization|password|secret|token|access[_-]?token|.*_key)$"
)
# Credential-looking strings inside free text: bearer tokens and well-known key prefixes.
_SECRET_TEXT = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{30,}"
)
REDACTED = "[redacted]"


def redact_body(body: Any) -> str:
    """A JSON body made safe to store: credential fields and key-shaped strings replaced."""
    return orjson.dumps(_redact(body)).decode()


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_FIELDS.match(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_TEXT.sub(lambda m: (m.group(1) or "") + REDACTED, value)
    return value
