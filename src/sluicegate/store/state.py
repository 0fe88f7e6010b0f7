"""The per-process state services: the database, the key cache and the ledger/log writer.

They depend only on `database_url` and `redis_url`, which a config reload cannot change (a restart
applies them), so every `Runtime` of a process built from the same URLs shares one set: a reload
keeps the warm key cache, the connection pool and the queued ledger rows without any hand-over.
Only the tiers (model allowlists by name) follow the newest config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from ..auth.cache import KeyCache
from .facade import Store
from .writer import RecordWriter


class StateServices:
    def __init__(self, database_url: str, redis_url: str | None) -> None:
        self.store = Store.from_url(database_url)
        self.keys = KeyCache(self.store, redis_url=redis_url)
        self.records = RecordWriter(self.store)
        self._key = (database_url, redis_url)
        self._started = False

    async def start(self) -> None:
        """Start the background tasks (invalidation listener, writer); idempotent."""
        if not self._started:
            self._started = True
            await self.keys.start()
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
            await self.store.close()


_SHARED: dict[tuple[str, str | None], StateServices] = {}


def state_for(database_url: str, redis_url: str | None, tiers: Mapping[str, Sequence[str]]) -> StateServices:
    """The process's state services for these URLs, created on first use (no I/O until used)."""
    key = (database_url, redis_url)
    state = _SHARED.get(key)
    if state is None:
        state = _SHARED[key] = StateServices(database_url, redis_url)
    state.keys.set_tiers(tiers)
    return state
