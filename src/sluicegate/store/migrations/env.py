"""Alembic environment, driven programmatically by store/migrate.py (no alembic.ini at runtime).

The caller opens the connection (on the async engine, through `run_sync`) and passes it in
`config.attributes["connection"]`; this file only binds it to the migration context.
"""

from __future__ import annotations

from alembic import context

from sluicegate.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
