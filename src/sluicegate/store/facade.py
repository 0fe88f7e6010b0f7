"""`Store`: the store operations other parts of the gateway call, each in its own transaction.

The repositories (keys.py, accounts.py, ledger.py, logs.py, audit.py) work on a connection so the
admin layer can group a change with its audit row; everything else (the key cache, the ledger
writer, budget seeding, reports) calls this facade and never sees a connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import audit, keys, ledger, logs, schema
from .db import Database
from .ledger import LedgerRow, SpendGroup
from .logs import LogRow


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def from_url(cls, database_url: str) -> Store:
        return cls(Database(database_url))

    async def close(self) -> None:
        await self.db.close()

    async def load_for_auth(self, key_hash: str) -> keys.AuthRow | None:
        async with self.db.read() as conn:
            return await keys.load_for_auth(conn, key_hash)

    async def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        async with self.db.write() as conn:
            return await ledger.insert_ledger_rows(conn, rows)

    async def insert_log_rows(self, rows: Sequence[LogRow]) -> int:
        async with self.db.write() as conn:
            return await logs.insert_log_rows(conn, rows)

    async def insert_rows(self, ledger_rows: Sequence[LedgerRow], log_rows: Sequence[LogRow]) -> None:
        """Ledger and log rows of a batch in one transaction (one commit, one fsync on Postgres)."""
        async with self.db.write() as conn:
            await ledger.insert_batch(conn, schema.ledger, ledger_rows)
            await ledger.insert_batch(conn, schema.request_log, log_rows)

    async def spend(
        self,
        group_by: str,
        *,
        start: int | None = None,
        end: int | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendGroup]:
        async with self.db.read() as conn:
            return await ledger.spend(conn, group_by, start=start, end=end, filters=filters)

    async def spent_since(self, scope_kind: str, scope_id: str, since: int | None) -> float:
        async with self.db.read() as conn:
            return await ledger.spent_since(conn, scope_kind, scope_id, since)

    async def claim_budget_alert(self, scope_kind: str, scope_id: str, period_start: int) -> bool:
        async with self.db.write() as conn:
            return await ledger.claim_budget_alert(conn, scope_kind, scope_id, period_start)

    async def logs(
        self, filters: Mapping[str, Any], limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        async with self.db.read() as conn:
            return await logs.query_logs(conn, filters=filters, limit=limit, cursor=cursor)

    async def verify_audit(self) -> audit.ChainCheck:
        async with self.db.read() as conn:
            return await audit.verify(conn)
