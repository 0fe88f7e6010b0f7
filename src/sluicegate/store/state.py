"""The per-process state services: the database, the key cache, the ledger/log writer, the limiter.

They depend only on `database_url` and `redis_url`, which a config reload cannot change (a restart
applies them), so every `Runtime` of a process built from the same URLs shares one set: a reload
keeps the warm key cache, the connection pool and the queued ledger rows without any hand-over.
Only the tiers (model allowlists by name) follow the newest config.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..auth.cache import KeyCache
from ..limits import make_limiter
from .db import sqlite_path
from .facade import Store
from .journal import Journal
from .writer import RecordWriter

log = logging.getLogger("sluicegate.store")


class StateServices:
    def __init__(self, database_url: str, redis_url: str | None) -> None:
        self.store = Store.from_url(database_url)
        self.keys = KeyCache(self.store, redis_url=redis_url)
        self.records = RecordWriter(self.store, journal=open_journal(database_url))
        # Limit and budget counters (in-process without Redis): a reload must not reset them.
        self.limiter = make_limiter(redis_url)
        self.seeded: set[tuple[str, str | None, int]] = set()  # budgets seeded from the ledger
        self._key = (database_url, redis_url)
        self._started = False

    async def start(self) -> None:
        """Start the background tasks (invalidation listener, writer); idempotent."""
        if not self._started:
            self._started = True
            await self.keys.start()
            try:
                # Rows a killed gateway had acknowledged but not committed (store/journal.py).
                await self.records.recover()
            except Exception:
                log.error("could not replay the spend journal; it is kept for the next start", exc_info=True)
            self.records.start()

    async def close(self) -> None:
        """Flush queued rows, stop the tasks, close the pool (the shutdown hook)."""
        if _SHARED.get(self._key) is self:
            del _SHARED[self._key]
        try:
            await self.records.close()
        finally:
            with contextlib.suppress(Exception):
                await self.keys.close()
            with contextlib.suppress(Exception):
                await self.limiter.close()
            await self.store.close()


_SHARED: dict[tuple[str, str | None], StateServices] = {}


def journal_dir(database_url: str) -> Path:
    """Where this database's spend journal lives: `$SLUICEGATE_JOURNAL_DIR`, else next to a SQLite
    file (`<file>.journal`), else a directory per database under the system's temp directory."""
    configured = os.environ.get("SLUICEGATE_JOURNAL_DIR")
    if configured:
        return Path(configured)
    path = sqlite_path(database_url)
    if path is not None:
        return path.with_name(path.name + ".journal")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"sluicegate-journal-{digest}"


def open_journal(database_url: str) -> Journal | None:
    """The process's journal; None (rows then live only in memory until flushed) if it cannot be made."""
    if os.environ.get("SLUICEGATE_JOURNAL_DIR") == "off":
        return None
    try:
        return Journal(journal_dir(database_url))
    except OSError:
        log.warning("no spend journal: SIGKILL may lose the last 0.2 s of calls", exc_info=True)
        return None


def state_for(database_url: str, redis_url: str | None, tiers: Mapping[str, Sequence[str]]) -> StateServices:
    """The process's state services for these URLs, created on first use (no I/O until used)."""
    key = (database_url, redis_url)
    state = _SHARED.get(key)
    if state is None:
        state = _SHARED[key] = StateServices(database_url, redis_url)
    state.keys.set_tiers(tiers)
    return state
