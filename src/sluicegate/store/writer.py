"""The ledger and request-log writer: a bounded in-memory queue flushed in batches off the hot path.

A finished call hands its rows to `put_nowait` / `put` (an append; `put` waits only when the queue
is full) and returns; a background task writes everything pending every `interval_s` (default
0.2 s), or at once when `batch_rows` are waiting, ledger and log rows in one transaction, in the
order they were queued. Inserts are idempotent on request id, so a batch whose commit outcome is
unknown is simply written again.

Loss window (SPEC §7): on SIGTERM the gateway's shutdown calls `close()`, which writes everything
pending. With a `Journal` (journal.py; the gateway always has one) each call's rows are also
copied into a memory-mapped file as they are queued, before the caller's last byte is sent, and a
restarted gateway replays what a killed one had not committed (`recover`): SIGKILL loses nothing
that was acknowledged. Without a journal, SIGKILL loses the rows not yet flushed: at most
`interval_s` plus one flush's duration of calls, more if the database lags behind the traffic.

When the database is unreachable rows are kept and retried with backoff; once `max_pending` rows are
waiting, `put` makes callers wait (backpressure) rather than drop spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .facade import Store
from .journal import Journal, forget, orphaned, read_segment
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
        journal: Journal | None = None,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self.max_backoff_s = max_backoff_s
        self.journal = journal
        # One entry per finished call, in the order queued (= the journal's order).
        self._queue: list[tuple[LedgerRow | None, LogRow | None]] = []
        self._rows = 0  # ledger + log rows in the queue
        self._in_flight = 0
        self._committed = 0  # calls whose rows are in the database, counted from the start
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0  # rows committed since start (ledger + log), for metrics and tests
        self.failures = 0

    @property
    def pending(self) -> int:
        return self._rows + self._in_flight

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sluicegate-record-writer")

    def put_nowait(self, ledger: LedgerRow | None = None, log_row: LogRow | None = None) -> None:
        """Queue (and journal) the rows of one finished call without waiting, even past `max_pending`;
        callers that can wait follow with `wait_for_room()`."""
        if ledger is None and log_row is None:
            return
        if self._task is None and not self._closing:
            self.start()
        if self.journal is not None:
            try:
                self.journal.append(ledger, log_row)
            except OSError:
                # A journal that cannot be written must never cost the row itself: go on without it.
                log.error("record writer: the spend journal failed; continuing without it", exc_info=True)
                self.journal = None
        self._queue.append((ledger, log_row))
        self._rows += (ledger is not None) + (log_row is not None)
        if self._rows >= self.batch_rows:
            self._wake.set()

    async def wait_for_room(self) -> None:
        """Backpressure: wait while `max_pending` rows are waiting for the database."""
        while self.pending >= self.max_pending:
            self._room.clear()
            self._wake.set()
            await self._room.wait()

    async def put(self, ledger: LedgerRow | None = None, log_row: LogRow | None = None) -> None:
        """Queue the rows of one finished call; returns at once unless the queue is full."""
        await self.wait_for_room()
        self.put_nowait(ledger, log_row)

    async def flush(self) -> None:
        """Write everything queued so far (raises if the database refuses)."""
        while self._queue:
            await self._write_batch()

    async def _flush_tick(self) -> None:
        # Only what was queued when the tick began: rows arriving meanwhile wait for the next tick
        # (or for `batch_rows`), so steady traffic makes one transaction per interval, not a
        # chain of tiny ones, each paying a transaction's fixed cost on the event loop.
        left = len(self._queue)
        while left > 0 and self._queue:
            left -= await self._write_batch()

    async def recover(self) -> int:
        """Insert the rows journaled by processes that died before committing them; the rows count."""
        if self.journal is None:
            return 0
        paths = orphaned(self.journal.dir)
        rows = 0
        for path in paths:
            records = list(read_segment(path))
            for i in range(0, len(records), self.batch_rows):
                chunk = records[i : i + self.batch_rows]
                ledger_rows = [r[0] for r in chunk if r[0] is not None]
                log_rows = [r[1] for r in chunk if r[1] is not None]
                await self.store.insert_rows(ledger_rows, log_rows)
                rows += len(ledger_rows) + len(log_rows)
        forget(paths)
        if paths:
            log.warning(
                "record writer: replayed the journal of a gateway that stopped without flushing",
                extra={"segments": len(paths), "rows": rows},
            )
        return rows

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop the background task and write everything pending (SIGTERM path)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while self._queue:
                try:
                    await self._write_batch()
                except Exception:
                    if asyncio.get_running_loop().time() >= deadline:
                        log.error(
                            "record writer: giving up at shutdown"
                            + ("; the journal keeps the rows for the next start" if self.journal else ""),
                            extra={"rows_pending": self.pending},
                        )
                        return
                    await asyncio.sleep(0.2)
        finally:
            if self.journal is not None:
                self.journal.close(drained=not self._queue)

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
                await self._flush_tick()
                backoff = self.interval_s
            except Exception:
                self.failures += 1
                log.warning("record writer: flush failed, will retry", exc_info=True)
                backoff = min(max(backoff * 2, 0.2), self.max_backoff_s)

    async def _write_batch(self) -> int:
        # About `batch_rows` rows (a call brings up to two), taken from the front: commits stay in
        # queue order, which is what lets the journal retire everything before a point.
        take = max(1, self.batch_rows // 2)
        batch, self._queue = self._queue[:take], self._queue[take:]
        ledger_rows = [pair[0] for pair in batch if pair[0] is not None]
        log_rows = [pair[1] for pair in batch if pair[1] is not None]
        count = len(ledger_rows) + len(log_rows)
        self._rows -= count
        self._in_flight = count
        try:
            await self.store.insert_rows(ledger_rows, log_rows)
        except BaseException:
            # Back to the front of the queue: written again on the next attempt (idempotent).
            self._queue[:0] = batch
            self._rows += count
            raise
        finally:
            self._in_flight = 0
        self.written += count
        self._committed += len(batch)
        if self.journal is not None:
            self.journal.commit(self._committed)
        if self.pending < self.max_pending:
            self._room.set()
        return len(batch)
