"""Initial schema: teams, users, api_keys, ledger, request_log, audit_log, budget_alerts.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01

Written out in full rather than importing store/schema.py: a migration must keep creating what it
created on the day it shipped, whatever the live schema module says later.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _limit_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("alias", sa.String(256), nullable=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("rpm", sa.BigInteger, nullable=True),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("max_parallel", sa.BigInteger, nullable=True),
        sa.Column("budget_usd", sa.Double, nullable=True),
        sa.Column("budget_period", sa.String(16), nullable=True),
        sa.Column("soft_budget_usd", sa.Double, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("log_bodies", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table("teams", sa.Column("id", sa.String(128), primary_key=True), *_limit_columns())
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("email", sa.String(320), nullable=True),
        *_limit_columns(),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        *_limit_columns(),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("team_id", sa.String(128), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("allowed_ips", sa.JSON, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("previous_key_hash", sa.String(64), nullable=True),
        sa.Column("previous_valid_until", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_api_keys_team_id", "api_keys", ["team_id"])
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_index("ix_api_keys_previous_key_hash", "api_keys", ["previous_key_hash"])
    op.create_table(
        "ledger",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(128), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("team_id", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("deployment", sa.String(256), nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
        sa.Column("usage_source", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("partial", sa.Boolean, nullable=False),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
    )
    op.create_index("ix_ledger_ts", "ledger", ["ts"])
    op.create_index("ix_ledger_key_ts", "ledger", ["key_id", "ts"])
    op.create_index("ix_ledger_user_ts", "ledger", ["user_id", "ts"])
    op.create_index("ix_ledger_team_ts", "ledger", ["team_id", "ts"])
    op.create_index("ix_ledger_model_ts", "ledger", ["model", "ts"])
    op.create_table(
        "request_log",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(128), nullable=True),
        sa.Column("team_id", sa.String(128), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("deployment", sa.String(256), nullable=True),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.Column("overhead_ms", sa.Double, nullable=True),
        sa.Column("ttft_ms", sa.Double, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cache", sa.String(8), nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
        sa.Column("usage_source", sa.String(16), nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("request_body", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
    )
    op.create_index("ix_request_log_ts", "request_log", ["ts"])
    op.create_index("ix_request_log_key_ts", "request_log", ["key_id", "ts"])
    op.create_index("ix_request_log_team_ts", "request_log", ["team_id", "ts"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(128), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("scope_kind", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(256), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("scope_kind", "scope_id", "period_start"),
    )


def downgrade() -> None:
    for table in ("budget_alerts", "audit_log", "request_log", "ledger", "api_keys", "users", "teams"):
        op.drop_table(table)
