"""The spend journal (store/journal.py) with the record writer: rows a killed process had queued but
not committed are replayed by the next one; committed rows retire their segments."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

from sluicegate.auth.records import now_ms
from sluicegate.store import LedgerRow, LogRow, Store
from sluicegate.store.journal import Journal, orphaned, read_segment
from sluicegate.store.migrate import upgrade
from sluicegate.store.writer import RecordWriter


def _queue_and_die(directory: str, count: int) -> None:
    """A child process: journal `count` calls without ever committing them, then get SIGKILLed."""
    journal = Journal(directory)
    for i in range(count):
        journal.append(
            LedgerRow(request_id=f"k{i}", ts=now_ms(), key_id="k", cost_usd=0.5),
            LogRow(request_id=f"k{i}", ts=now_ms(), key_id="k"),
        )
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_process_leaves_every_appended_record_readable(tmp_path: Path) -> None:
    """After SIGKILL, the dead process's segments are orphaned and hold every record it appended."""
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_queue_and_die, args=(str(tmp_path), 500))
    child.start()
    child.join(20)
    assert child.exitcode == -signal.SIGKILL
    segments = orphaned(tmp_path)
    records = [record for path in segments for record in read_segment(path)]
    assert [r[0].request_id for r in records if r[0]] == [f"k{i}" for i in range(500)]


def test_a_live_journal_is_not_orphaned(tmp_path: Path) -> None:
    """Segments of a process that is alive (its lock held) are never replayed by another."""
    journal = Journal(tmp_path)
    journal.append(LedgerRow(request_id="live", ts=now_ms()), None)
    assert orphaned(tmp_path) == []
    journal.close(drained=False)
    assert len(orphaned(tmp_path)) == 1


async def test_the_next_writer_replays_what_a_killed_one_had_not_committed(tmp_path: Path) -> None:
    """`recover` inserts a dead process's journaled rows once, and removes its files."""
    url = f"sqlite:///{tmp_path}/sg.db"
    await upgrade(url)
    store = Store.from_url(url)
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_queue_and_die, args=(str(tmp_path / "j"), 300))
    child.start()
    child.join(20)
    writer = RecordWriter(store, journal=Journal(tmp_path / "j"))
    assert await writer.recover() == 600
    assert await writer.recover() == 0
    spend = await store.spend("key")
    assert [(g.group, g.requests, g.cost_usd) for g in spend] == [("k", 300, 150.0)]
    assert list((tmp_path / "j").glob("*.seg")) == []
    await writer.close()
    await store.close()


async def test_committed_rows_are_retired_and_a_clean_close_leaves_nothing(tmp_path: Path) -> None:
    """Once the writer has committed everything, closing deletes the process's journal files."""
    url = f"sqlite:///{tmp_path}/sg.db"
    await upgrade(url)
    store = Store.from_url(url)
    writer = RecordWriter(store, journal=Journal(tmp_path / "j"), interval_s=0.01)
    for i in range(50):
        await writer.put(LedgerRow(request_id=f"c{i}", ts=now_ms(), key_id="c"), None)
    await writer.flush()
    assert writer.journal is not None and writer.journal.committed == 50
    await writer.close()
    assert list((tmp_path / "j").iterdir()) == []
    await store.close()
