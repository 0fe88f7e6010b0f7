"""A default priority per key: `api_keys.priority` (high | normal | low; null = normal).

Revision ID: 0002_key_priority
Revises: 0001_initial
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_key_priority"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: a plain ADD COLUMN on both SQLite and Postgres, no table rewrite.
    op.add_column("api_keys", sa.Column("priority", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # SQLite drops columns through a table copy
        batch.drop_column("priority")
