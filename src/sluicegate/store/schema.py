"""The tables, as SQLAlchemy Core, one schema for SQLite and Postgres.

Conventions that keep the two dialects identical:
- every time is an integer of milliseconds since the Unix epoch (UTC): ranges and day buckets are
  plain integer arithmetic on both, and no timezone conversion happens in the database;
- money is a double (`cost_usd`), summed in SQL; at a millionth of a cent per call the rounding
  error of a double stays below a billionth of a dollar over millions of rows;
- lists and objects are JSON columns; the audit log's `detail` is TEXT so its hash is computed over
  the exact stored bytes;
- no foreign keys: ledger and log rows outlive the keys, users and teams they name, and the admin
  layer checks references when they are written.

Migrations (store/migrations/) create exactly this; a test compares the two.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = 128  # length of ids (keys, teams, users, request ids)


def _limit_columns() -> list[Column[Any]]:
    """The limit and budget fields keys, users and teams share (SPEC §4)."""
    return [
        Column("alias", String(256), nullable=True),
        Column("models", JSON, nullable=False),
        Column("tier", String(64), nullable=True),
        Column("rpm", BigInteger, nullable=True),
        Column("tpm", BigInteger, nullable=True),
        Column("max_parallel", BigInteger, nullable=True),
        Column("budget_usd", Double, nullable=True),
        Column("budget_period", String(16), nullable=True),
        Column("soft_budget_usd", Double, nullable=True),
        Column("metadata", JSON, nullable=False),
        Column("log_bodies", Boolean, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("updated_at", BigInteger, nullable=False),
    ]


teams = Table(
    "teams",
    metadata,
    Column("id", String(ID), primary_key=True),
    *_limit_columns(),
)

users = Table(
    "users",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("email", String(320), nullable=True),
    *_limit_columns(),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    *_limit_columns(),
    Column("expires_at", BigInteger, nullable=True),
    Column("team_id", String(ID), nullable=True, index=True),
    Column("user_id", String(ID), nullable=True, index=True),
    Column("allowed_ips", JSON, nullable=False),
    Column("role", String(16), nullable=False),
    # Default `x-sluicegate-priority` of the key's calls (high | normal | low); null = normal.
    Column("priority", String(8), nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    # Rotation grace: the replaced secret's hash stays valid until previous_valid_until.
    Column("previous_key_hash", String(64), nullable=True, index=True),
    Column("previous_valid_until", BigInteger, nullable=True),
)

ledger = Table(
    "ledger",
    metadata,
    Column("request_id", String(ID), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("key_id", String(ID), nullable=True),
    Column("user_id", String(ID), nullable=True),
    Column("team_id", String(ID), nullable=True),
    Column("model", String(256), nullable=True),
    Column("provider", String(64), nullable=True),
    Column("deployment", String(256), nullable=True),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("usage_source", String(16), nullable=False),  # provider | counted
    Column("status", Integer, nullable=False),  # HTTP status the caller saw
    Column("partial", Boolean, nullable=False),  # stream cut or cancelled: billed for what was sent
    Column("duration_ms", Double, nullable=False),
    Column("tags", JSON, nullable=False),
    Index("ix_ledger_ts", "ts"),
    Index("ix_ledger_key_ts", "key_id", "ts"),
    Index("ix_ledger_user_ts", "user_id", "ts"),
    Index("ix_ledger_team_ts", "team_id", "ts"),
    Index("ix_ledger_model_ts", "model", "ts"),
)

request_log = Table(
    "request_log",
    metadata,
    Column("request_id", String(ID), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("endpoint", String(64), nullable=True),
    Column("key_id", String(ID), nullable=True),
    Column("team_id", String(ID), nullable=True),
    Column("user_id", String(ID), nullable=True),
    Column("model", String(256), nullable=True),
    Column("provider", String(64), nullable=True),
    Column("deployment", String(256), nullable=True),
    Column("status_code", Integer, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("stream", Boolean, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("overhead_ms", Double, nullable=True),
    Column("ttft_ms", Double, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("cache", String(8), nullable=True),  # hit | miss | off
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("usage_source", String(16), nullable=True),
    Column("tags", JSON, nullable=False),
    Column("request_body", Text, nullable=True),  # only when log_bodies is on, secrets redacted
    Column("response_body", Text, nullable=True),
    Index("ix_request_log_ts", "ts"),
    Index("ix_request_log_key_ts", "key_id", "ts"),
    Index("ix_request_log_team_ts", "team_id", "ts"),
)

audit_log = Table(
    "audit_log",
    metadata,
    # seq is assigned by the writer (previous + 1), not by the database: the chain needs the
    # previous row anyway, and a unique seq makes two racing appends collide instead of forking.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("actor", String(ID), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(ID), nullable=True),
    Column("request_id", String(ID), nullable=True),
    Column("detail", Text, nullable=False),  # canonical JSON; hashed as stored
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("scope_kind", String(16), nullable=False),  # key | user | team | model
    Column("scope_id", String(256), nullable=False),
    Column("period_start", BigInteger, nullable=False),  # as the limits engine reports it; 0 = lifetime
    Column("sent_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("scope_kind", "scope_id", "period_start"),
)
