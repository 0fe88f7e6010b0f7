"""The database handle: one SQLAlchemy AsyncEngine per process, on SQLite (embedded) or Postgres.

`database_url` takes the SPEC §3 forms: `sqlite:///relative.db`, `sqlite:////absolute/path.db`
(aiosqlite) and `postgresql://user@host/db` (asyncpg). Every SQLite connection is put in WAL mode
with `synchronous=NORMAL` (a commit survives a killed process; only an OS crash can lose the last
commits) and a `busy_timeout`, so concurrent workers wait for the write lock instead of failing.

Two kinds of transaction: `read()` and `write()`. On SQLite `write()` opens with
`BEGIN IMMEDIATE`: a deferred transaction that reads and then writes cannot upgrade its lock
once another connection has committed, and SQLite refuses it at once (SQLITE_BUSY) without
waiting for `busy_timeout`. Taking the write lock up front makes writers queue instead.

The engine is created on first use: constructing a `Database` costs nothing, so a `Runtime` can
hold one without touching the disk or the network.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "sluicegate_begin"


def engine_url(database_url: str) -> tuple[str, str]:
    """Map a SPEC-style URL to (SQLAlchemy async URL, dialect name); ConfigError for anything else."""
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        raise ConfigError(f"database_url: expected sqlite:///PATH or postgresql://..., got {database_url!r}")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}", "sqlite"
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}", "postgresql"
    raise ConfigError(
        f"database_url: unsupported scheme {scheme!r}; use sqlite:///PATH or postgresql://user@host/db"
    )


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL (None for in-memory or other databases)."""
    url, dialect = engine_url(database_url)
    if dialect != "sqlite":
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


class Database:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._async_url, self.dialect = engine_url(database_url)
        self._engine: AsyncEngine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> AsyncEngine:
        if not self.is_sqlite:
            # pre_ping: the database is never on the request path, so one extra round trip per
            # checkout is cheap insurance against connections a restarted Postgres has dropped.
            return create_async_engine(self._async_url, pool_size=5, max_overflow=10, pool_pre_ping=True)
        path = sqlite_path(self.url)
        kwargs: dict[str, Any] = {}
        if path is None:
            # One shared connection, or every connection would see its own empty in-memory database.
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self._async_url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction (one consistent snapshot)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on exit and rolled back on error."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with conn.begin():
                yield conn

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_nothing` on both SQLite and Postgres."""
    return sqlite.insert(table) if conn.dialect.name == "sqlite" else postgresql.insert(table)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the driver's implicit transactions would
    # otherwise start late and always DEFERRED).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))
