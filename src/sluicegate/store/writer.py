"""The ledger and request-log writer: a bounded in-memory queue flushed in batches off the hot path.

A finished call hands its rows to `put` (an append; it waits only when the queue is full) and
returns; a background task writes everything pending every `interval_s` (default 0.2 s), or at
once when `batch_rows` are waiting, ledger and log rows in one transaction. Inserts are idempotent
on request id, so a batch whose commit outcome is unknown is simply written again.

Loss window (SPEC §7): on SIGTERM the gateway's shutdown calls `close()`, which writes everything
pending. On SIGKILL the rows not yet flushed are lost: at most `interval_s` plus one flush's
duration of acknowledged calls (well under the 1 s the issue allows). A committed SQLite WAL
transaction survives a killed process (only an OS crash can lose it, with synchronous=NORMAL).

When the database is unreachable rows are kept and retried with backoff; once `max_pending` rows are
waiting, `put` makes callers wait (backpressure) rather than drop spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .facade import Store
from .ledger import LedgerRow
from .logs import LogRow

log = logging.getLogger("sluicegate.store")


class RecordWriter:
    def __init__(
        self,
        store: Store,
        *,
        interval_s: float = 0.2,
        batch_rows: int = 1000,
        max_pending: int = 100_000,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self.max_backoff_s = max_backoff_s
        self._ledger: list[LedgerRow] = []
        self._logs: list[LogRow] = []
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0  # rows committed since start (ledger + log), for metrics and tests
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._ledger) + len(self._logs) + self._in_flight

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sluicegate-record-writer")

    async def put(self, ledger: LedgerRow | None = None, log_row: LogRow | None = None) -> None:
        """Queue the rows of one finished call; returns at once unless the queue is full."""
        if self._task is None and not self._closing:
            self.start()
        while self.pending >= self.max_pending:
            self._room.clear()
            self._wake.set()
            await self._room.wait()
        if ledger is not None:
            self._ledger.append(ledger)
        if log_row is not None:
            self._logs.append(log_row)
        if len(self._ledger) + len(self._logs) >= self.batch_rows:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far (raises if the database refuses)."""
        while self._ledger or self._logs:
            await self._write_batch()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop the background task and write everything pending (SIGTERM path)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._ledger or self._logs:
            try:
                await self._write_batch()
            except Exception:
                if asyncio.get_running_loop().time() >= deadline:
                    log.error("record writer: giving up at shutdown", extra={"rows_lost": self.pending})
                    return
                await asyncio.sleep(0.2)

    async def _run(self) -> None:
        backoff = self.interval_s
        while not self._closing:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that arrives as
            # the wait completes, and close() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                backoff = self.interval_s
            except Exception:
                self.failures += 1
                log.warning("record writer: flush failed, will retry", exc_info=True)
                backoff = min(max(backoff * 2, 0.2), self.max_backoff_s)

    async def _write_batch(self) -> None:
        ledger_rows, self._ledger = self._ledger[: self.batch_rows], self._ledger[self.batch_rows :]
        log_rows, self._logs = self._logs[: self.batch_rows], self._logs[self.batch_rows :]
        self._in_flight = len(ledger_rows) + len(log_rows)
        try:
            await self.store.insert_rows(ledger_rows, log_rows)
        except BaseException:
            # Back to the front of the queue: written again on the next attempt (idempotent).
            self._ledger[:0] = ledger_rows
            self._logs[:0] = log_rows
            raise
        finally:
            self._in_flight = 0
        self.written += len(ledger_rows) + len(log_rows)
        if self.pending < self.max_pending:
            self._room.set()
