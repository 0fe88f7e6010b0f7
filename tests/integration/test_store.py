"""The store on real SQLite and real Postgres: migrations, keys, ledger, spend, logs, audit chain, writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest
from sqlalchemy import select, text, update

from sluicegate.auth.keys import hash_secret
from sluicegate.auth.records import now_ms
from sluicegate.store import audit, keys, ledger, logs
from sluicegate.store.accounts import create_account
from sluicegate.store.db import Database
from sluicegate.store.facade import Store
from sluicegate.store.ledger import LedgerRow
from sluicegate.store.logs import LogRow
from sluicegate.store.migrate import HEAD, current_revision, upgrade, upgrade_db
from sluicegate.store.schema import api_keys, audit_log, metadata, request_log
from sluicegate.store.schema import ledger as ledger_table
from sluicegate.store.writer import RecordWriter

DAY = 86_400_000


def _ms(text_date: str) -> int:
    return int(datetime.fromisoformat(text_date).replace(tzinfo=UTC).timestamp() * 1000)


async def test_migrations_apply_twice_and_create_exactly_the_schema(database_url: str) -> None:
    """Upgrading twice is a no-op the second time, and the migrated tables match store/schema.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    await upgrade(database_url)
    await upgrade(database_url)
    db = Database(database_url)
    try:
        assert await current_revision(db) == HEAD

        def diff(sync_conn: object) -> list[object]:
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})  # type: ignore[arg-type]
            return list(compare_metadata(context, metadata))

        async with db.read() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.close()


async def test_concurrent_migrators_leave_one_schema(database_url: str) -> None:
    """Three processes' worth of migrators started at once all succeed and the schema exists once."""
    await asyncio.gather(*(upgrade(database_url) for _ in range(3)))
    db = Database(database_url)
    try:
        assert await current_revision(db) == HEAD
    finally:
        await db.close()


async def test_key_secret_is_stored_only_as_its_hash(db: Database) -> None:
    """The database holds the SHA-256 and a short prefix of a new key, never the secret."""
    async with db.write() as conn:
        record, secret = await keys.create_key(conn, {"alias": "k"})
    assert secret.startswith("sk-sg-") and len(secret) == 6 + 43
    async with db.read() as conn:
        row = (await conn.execute(select(api_keys))).one()._mapping
    assert secret not in [str(v) for v in row.values()]
    assert row["key_hash"] == hash_secret(secret) == record.key_hash
    assert secret.startswith(row["key_prefix"]) and len(row["key_prefix"]) == 14


async def test_sql_looking_strings_are_stored_verbatim(db: Database) -> None:
    """Aliases and metadata that look like SQL are data: stored and read back unchanged, tables intact."""
    alias = "x'); DROP TABLE api_keys; --"
    meta = {"note": "1' OR '1'='1", "nested": ["; DELETE FROM ledger"]}
    async with db.write() as conn:
        record, _ = await keys.create_key(conn, {"alias": alias, "metadata": meta})
    async with db.read() as conn:
        again = await keys.get_key(conn, record.id)
        count = (await conn.execute(text("SELECT count(*) FROM api_keys"))).scalar_one()
    assert again is not None and again.alias == alias and dict(again.metadata) == meta
    assert count == 1


async def test_auth_lookup_joins_user_and_team(db: Database) -> None:
    """One lookup by hash returns the key with its user and team records."""
    async with db.write() as conn:
        await create_account(conn, "team", {"id": "t1", "rpm": 5})
        await create_account(conn, "user", {"id": "u1", "email": "a@b.c", "budget_usd": 2.0})
        record, secret = await keys.create_key(conn, {"team_id": "t1", "user_id": "u1", "models": ["m"]})
    found = await Store(db).load_for_auth(hash_secret(secret))
    assert found is not None and not found.via_previous
    assert found.key.id == record.id and found.key.models == ("m",)
    assert found.team is not None and found.team.rpm == 5
    assert found.user is not None and found.user.email == "a@b.c" and found.user.budget_usd == 2.0
    assert await Store(db).load_for_auth(hash_secret("sk-sg-unknown")) is None


async def test_rotation_keeps_the_old_secret_only_for_the_grace_period(db: Database) -> None:
    """After rotate(grace) the old secret resolves as `via_previous` until the grace ends; grace 0 ends it."""
    store = Store(db)
    async with db.write() as conn:
        record, old = await keys.create_key(conn, {})
        rotated = await keys.rotate_key(conn, record.id, grace_s=0.3)
    assert rotated is not None
    new_record, new = rotated
    assert new != old and new_record.id == record.id
    before = await store.load_for_auth(hash_secret(old))
    assert before is not None and before.via_previous and before.key.usable(True, now_ms())
    current = await store.load_for_auth(hash_secret(new))
    assert current is not None and not current.via_previous and current.key.usable(False, now_ms())
    await asyncio.sleep(0.35)
    after = await store.load_for_auth(hash_secret(old))
    assert after is not None and not after.key.usable(True, now_ms())
    async with db.write() as conn:
        again = await keys.rotate_key(conn, record.id, grace_s=0)
    assert again is not None
    assert await store.load_for_auth(hash_secret(new)) is None  # no grace: the replaced secret is gone


async def test_revoked_key_keeps_its_record_and_cannot_be_rotated(db: Database) -> None:
    """Revoking stamps revoked_at once, keeps the row, and refuses rotation."""
    async with db.write() as conn:
        record, _ = await keys.create_key(conn, {})
        first = await keys.revoke_key(conn, record.id)
        second = await keys.revoke_key(conn, record.id)
        rotated = await keys.rotate_key(conn, record.id, 10)
    assert first is not None and first[1] and first[0].revoked_at is not None
    assert second is not None and not second[1] and second[0].revoked_at == first[0].revoked_at
    assert rotated is None


async def test_key_list_pages_and_filters(db: Database) -> None:
    """Listing keys walks every key exactly once across pages, and filters by team and revocation."""
    async with db.write() as conn:
        await create_account(conn, "team", {"id": "t"})
        created = [(await keys.create_key(conn, {"team_id": "t" if i % 2 else None}))[0] for i in range(7)]
        await keys.revoke_key(conn, created[1].id)
    seen, cursor = [], None
    async with db.read() as conn:
        while True:
            page, cursor = await keys.list_keys(conn, limit=3, cursor=cursor)
            seen += [k.id for k in page]
            if cursor is None:
                break
        team_page, _ = await keys.list_keys(conn, limit=100, team_id="t", include_revoked=False)
    assert sorted(seen) == sorted(k.id for k in created) and len(seen) == 7
    assert {k.id for k in team_page} == {created[3].id, created[5].id}


async def test_ledger_insert_is_idempotent_on_request_id(db: Database) -> None:
    """The same request id written twice (in one batch or two) is one ledger row, counted once."""
    store = Store(db)
    row = LedgerRow(request_id="r1", ts=now_ms(), key_id="k", cost_usd=0.5, input_tokens=10)
    assert await store.insert_ledger_rows([row, row]) == 1
    assert await store.insert_ledger_rows([row, LedgerRow(request_id="r2", ts=now_ms(), key_id="k")]) == 1
    groups = await store.spend("key")
    assert [(g.group, g.requests, g.cost_usd) for g in groups] == [("k", 2, 0.5)]


async def test_large_batches_are_written_whole(db: Database) -> None:
    """A 2,500-row batch (more bound parameters than one SQLite statement takes) is written whole."""
    rows = [LedgerRow(request_id=f"r{i}", ts=now_ms(), tags=["bulk"]) for i in range(2500)]
    assert await Store(db).insert_ledger_rows(rows) == 2500
    assert (await Store(db).spend("key"))[0].requests == 2500


async def test_spend_groups_by_every_dimension_within_the_date_range(db: Database) -> None:
    """Spend sums per key/user/team/model/provider/day, counting only rows in [start, end)."""
    base = _ms("2025-03-01")
    rows = [
        LedgerRow(request_id="a", ts=base + 1000, key_id="k1", user_id="u1", team_id="t1", model="m1",
                  provider="openai", input_tokens=100, output_tokens=10, cost_usd=1.0),
        LedgerRow(request_id="b", ts=base + DAY + 5, key_id="k1", user_id="u1", team_id="t1", model="m2",
                  provider="anthropic", input_tokens=200, output_tokens=20, cost_usd=2.0),
        LedgerRow(request_id="c", ts=base + 2 * DAY, key_id="k2", team_id="t1", model="m1",
                  provider="openai", input_tokens=300, output_tokens=30, cost_usd=4.0),
        LedgerRow(request_id="d", ts=base - 1, key_id="k2", model="m1", provider="openai", cost_usd=100.0),
    ]  # fmt: skip
    store = Store(db)
    await store.insert_ledger_rows(rows)
    start, end = base, base + 3 * DAY

    def summary(groups: list[ledger.SpendGroup]) -> list[tuple[object, int, float]]:
        return [(g.group, g.requests, g.cost_usd) for g in groups]

    assert summary(await store.spend("key", start=start, end=end)) == [("k2", 1, 4.0), ("k1", 2, 3.0)]
    assert summary(await store.spend("model", start=start, end=end)) == [("m1", 2, 5.0), ("m2", 1, 2.0)]
    assert summary(await store.spend("provider", start=start, end=end)) == [
        ("openai", 2, 5.0),
        ("anthropic", 1, 2.0),
    ]
    assert summary(await store.spend("user", start=start, end=end)) == [(None, 1, 4.0), ("u1", 2, 3.0)]
    assert summary(await store.spend("team", start=start, end=end)) == [("t1", 3, 7.0)]
    days = await store.spend("day", start=start, end=end)
    assert summary(days) == [("2025-03-01", 1, 1.0), ("2025-03-02", 1, 2.0), ("2025-03-03", 1, 4.0)]
    assert days[0].input_tokens == 100 and days[0].output_tokens == 10
    # end is exclusive; no range means everything, including the row before `start`
    assert summary(await store.spend("day", start=start, end=base + DAY + 5)) == [("2025-03-01", 1, 1.0)]
    assert sum(g.cost_usd for g in await store.spend("key")) == 107.0
    assert summary(await store.spend("model", start=start, filters={"key_id": "k1"})) == [
        ("m2", 1, 2.0),
        ("m1", 1, 1.0),
    ]


async def test_spent_since_seeds_budget_counters(db: Database) -> None:
    """spent_since sums a key's/user's/team's/model's cost from a moment on."""
    store = Store(db)
    now = now_ms()
    await store.insert_ledger_rows(
        [
            LedgerRow(request_id="1", ts=now - 10_000, key_id="k", team_id="t", model="m", cost_usd=0.25),
            LedgerRow(request_id="2", ts=now - 1_000, key_id="k", team_id="t", model="m", cost_usd=0.5),
            LedgerRow(request_id="3", ts=now - 1_000, key_id="other", cost_usd=9.0),
        ]
    )
    assert await store.spent_since("key", "k", now - 5_000) == 0.5
    assert await store.spent_since("key", "k", None) == 0.75
    assert await store.spent_since("team", "t", None) == 0.75
    assert await store.spent_since("model", "m", now - 20_000) == 0.75
    assert await store.spent_since("user", "nobody", None) == 0.0


async def test_soft_budget_alert_is_claimed_once_per_period(db: Database) -> None:
    """Of many concurrent claims for one scope and period exactly one wins; the next period is new."""
    store = Store(db)
    wins = await asyncio.gather(*(store.claim_budget_alert("team", "t", 1000) for _ in range(8)))
    assert sum(wins) == 1
    assert await store.claim_budget_alert("team", "t", 2000)


async def test_logs_page_newest_first_with_filters(db: Database) -> None:
    """Log pages come newest first, never repeat or skip a row, and filter by key and status."""
    now = now_ms()
    rows = [
        LogRow(request_id=f"q{i:02d}", ts=now - i * 10 + (i % 3 == 0), key_id="k1" if i % 2 else "k2",
               status_code=429 if i % 5 == 0 else 200, request_body='{"x":1}')
        for i in range(25)
    ]  # fmt: skip
    store = Store(db)
    assert await store.insert_log_rows(rows) == 25
    assert await store.insert_log_rows(rows[:3]) == 0
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await store.logs({}, limit=10, cursor=cursor)
        assert "request_body" not in page[0]  # lists leave bodies out
        seen += [r["request_id"] for r in page]
        if cursor is None:
            break
    assert seen == [f"q{i:02d}" for i in range(25)]
    errors, _ = await store.logs({"status": "error", "key_id": "k2"}, limit=100)
    assert [r["request_id"] for r in errors] == ["q00", "q10", "q20"]
    exact, _ = await store.logs({"status": "429", "start": now - 95, "end": now + 2}, limit=100)
    assert [r["request_id"] for r in exact] == ["q00", "q05"]
    async with db.read() as conn:
        detail = await logs.get_log(conn, "q03")
    assert detail is not None and detail["request_body"] == '{"x":1}'


def test_logged_bodies_are_redacted() -> None:
    """Credential fields and key-shaped strings in a logged body are replaced before storage."""
    body = {
        "api_key": "abc",
        "messages": [{"content": "my key is sk-proj-ABCDEFGH12345678 ok"}],
        "headers": {"Authorization": "Bearer abcdefghijklmnop"},
        "model": "m",
    }
    stored = logs.redact_body(body)
    assert "abc" not in stored and "sk-proj-ABCDEFGH" not in stored and "abcdefghijklmnop" not in stored
    assert '"model":"m"' in stored and "my key is [redacted] ok" in stored


async def test_audit_chain_verifies_and_pinpoints_tampering(db: Database) -> None:
    """An untouched chain verifies; an edited row, or a deleted one, is reported by its sequence number."""
    async with db.write() as conn:
        for i in range(5):
            await audit.append(conn, actor="master", action="key.create", object_type="key",
                               object_id=f"key_{i}", detail={"alias": f"a{i}", "rpm": i})  # fmt: skip
    store = Store(db)
    check = await store.verify_audit()
    assert check.ok and check.rows == 5 and check.head != audit.GENESIS
    async with db.write() as conn:
        await conn.execute(
            update(audit_log).where(audit_log.c.seq == 3).values(detail='{"alias":"evil","rpm":2}')
        )
    check = await store.verify_audit()
    assert not check.ok and check.first_bad_seq == 3 and check.rows == 2
    async with db.write() as conn:
        row = (await conn.execute(select(audit_log).where(audit_log.c.seq == 3))).one()._mapping
        # Re-hash the edited row: the link from row 4 still breaks.
        fields = [row[c] for c in ("seq", "ts", "actor", "action", "object_type", "object_id", "request_id")]
        forged = audit.row_hash(*fields, row["detail"], row["prev_hash"])
        await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(hash=forged))
    check = await store.verify_audit()
    assert not check.ok and check.first_bad_seq == 4
    async with db.write() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    check = await store.verify_audit()
    assert not check.ok and check.first_bad_seq == 2


async def test_concurrent_audit_appends_form_one_chain(db: Database) -> None:
    """Appends from many concurrent transactions never fork the chain."""

    async def one(i: int) -> None:
        async with db.write() as conn:
            await audit.append(conn, actor="a", action="x", object_type="key", object_id=str(i), detail={})

    await asyncio.gather(*(one(i) for i in range(10)))
    check = await Store(db).verify_audit()
    assert check.ok and check.rows == 10


async def test_record_writer_flushes_in_batches_and_on_close(db: Database) -> None:
    """Queued rows reach the database within the flush interval, and every row is written by close()."""
    store = Store(db)
    writer = RecordWriter(store, interval_s=0.05, batch_rows=100)
    writer.start()
    await writer.put(
        LedgerRow(request_id="early", ts=now_ms(), cost_usd=1.0), LogRow(request_id="early", ts=now_ms())
    )
    for _ in range(200):  # the background flush, within 2 s at most
        if writer.written >= 2:
            break
        await asyncio.sleep(0.01)
    assert writer.written == 2
    for i in range(250):
        await writer.put(LedgerRow(request_id=f"r{i}", ts=now_ms(), cost_usd=0.01))
    await writer.close()
    assert writer.pending == 0
    total = await store.spend("key")
    assert total[0].requests == 251


async def test_record_writer_keeps_rows_while_the_database_is_down(tmp_path: object) -> None:
    """A failed flush keeps its rows and writes them (once) when the database is back."""
    path = f"{tmp_path}/late.db"
    store = Store(Database(f"sqlite:///{path}"))  # not migrated yet: inserts fail
    writer = RecordWriter(store, interval_s=0.02, max_backoff_s=0.05)
    writer.start()
    await writer.put(LedgerRow(request_id="kept", ts=now_ms(), cost_usd=3.0))
    for _ in range(200):
        if writer.failures:
            break
        await asyncio.sleep(0.01)
    assert writer.failures >= 1 and writer.pending == 1
    await upgrade_db(store.db)
    await writer.close()
    assert [(g.requests, g.cost_usd) for g in await store.spend("key")] == [(1, 3.0)]
    await store.close()


@pytest.mark.parametrize("bad", ["mysql://x/y", "sqlite", "redis://localhost"])
def test_unsupported_database_urls_are_config_errors(bad: str) -> None:
    """Anything but sqlite:/// and postgresql:// is refused with a ConfigError naming database_url."""
    from sluicegate.errors import ConfigError

    with pytest.raises(ConfigError, match="database_url"):
        Database(bad)


async def test_writer_batches_round_trip_every_field_and_skip_duplicates(db: Database) -> None:
    """`insert_rows` (the writer's driver-level bulk path) stores every field, JSON tags included,
    and a batch written twice adds nothing, on both dialects."""
    store = Store(db)
    row = LedgerRow(
        request_id="fast-1",
        ts=1_700_000_000_000,
        key_id="k",
        user_id="u",
        team_id="t",
        model="m",
        provider="p",
        deployment="p/m",
        input_tokens=3,
        cached_tokens=1,
        output_tokens=2,
        cost_usd=0.25,
        usage_source="counted",
        status=200,
        partial=True,
        duration_ms=1.5,
        tags=["a", "b"],
    )
    log_row = LogRow(request_id="fast-1", ts=1_700_000_000_000, key_id="k", stream=True, tags=["x"])
    await store.insert_rows([row], [log_row])
    await store.insert_rows([row], [log_row])
    async with db.read() as conn:
        stored = [dict(r._mapping) for r in (await conn.execute(select(ledger_table))).all()]
        logged = [dict(r._mapping) for r in (await conn.execute(select(request_log))).all()]
    assert len(stored) == 1 and len(logged) == 1
    assert stored[0] == msgspec.structs.asdict(row)
    assert logged[0]["tags"] == ["x"] and logged[0]["stream"] is True
