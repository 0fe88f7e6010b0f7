"""Apply the database migrations: `sluicegate migrate`, and once at `serve` start.

Idempotent and safe to run from several processes at once: the upgrade runs in one write
transaction (SQLite `BEGIN IMMEDIATE`; on Postgres under an advisory lock), and Alembic re-reads
the version inside it, so a second migrator finds the work done. Both dialects have transactional
DDL, so a failed migration leaves the database as it was.

A database already at the head revision is recognised with one query and Alembic is not even
imported: that keeps `serve` start-up fast (SPEC §9: ready within 1.5 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from .db import Database

HEAD = "0002_key_priority"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant: the advisory lock only serialises Sluicegate migrators with each other.
_PG_LOCK_ID = 0x51_1CE_6A7E


async def upgrade(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema."""
    db = Database(database_url)
    try:
        await upgrade_db(db)
    finally:
        await db.close()


async def needs_upgrade(database_url: str) -> bool:
    """Whether the database at `database_url` is behind the newest schema (one query)."""
    db = Database(database_url)
    try:
        return await current_revision(db) != HEAD
    finally:
        await db.close()


async def upgrade_db(db: Database) -> None:
    if await current_revision(db) == HEAD:
        return
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        await conn.run_sync(_alembic_upgrade)


async def current_revision(db: Database) -> str | None:
    """The applied revision, or None for a database never migrated."""
    try:
        async with db.read() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError:
        return None  # no alembic_version table yet


def _alembic_upgrade(connection: Any) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
