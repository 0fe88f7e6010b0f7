"""Store fixtures: one fresh database per test, on SQLite (a temp file) and on Postgres.

Postgres databases live in the session's private cluster (tests/services.py), never on a server
the tests did not start. Creating a database costs most of a second, so tests that need a migrated
one share a database migrated once per session and emptied (TRUNCATE) before each test; tests that
need an empty one (migrations) get a new database with a random name.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sluicegate.store.db import Database
from sluicegate.store.migrate import upgrade
from sluicegate.store.schema import metadata

_migrated: dict[str, str] = {}


async def fresh_postgres_database(server_url: str) -> str:
    """CREATE DATABASE with a random name on the private server; returns its URL."""
    name = f"sg_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # the name is ours (hex), never user input
    finally:
        await conn.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def migrated_postgres_database(server_url: str) -> str:
    """The session's migrated database, emptied."""
    url = _migrated.get(server_url)
    if url is None:
        url = _migrated[server_url] = await fresh_postgres_database(server_url)
        await upgrade(url)
    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        await conn.execute(f"TRUNCATE {tables}")
    finally:
        await conn.close()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each store test runs once on SQLite and once on Postgres."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database's URL, once per backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return await fresh_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def migrated_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database's URL, once per backend."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
        await upgrade(url)
        return url
    return await migrated_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    """A migrated database, once per backend."""
    database = Database(migrated_url)
    yield database
    await database.close()
