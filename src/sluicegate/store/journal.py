"""The write-ahead journal: each finished call's rows copied into a memory-mapped file before the
caller gets its last byte, so a killed process loses no acknowledged spend.

A process appends to its own segment file through a shared memory map: an append is one memcpy
(no system call, no fsync, nothing awaited). The pages belong to the kernel's page cache the moment
they are written, so they outlive the process: SIGKILL, an OOM kill or a crash of the gateway
loses nothing that was appended. (Only the machine itself going down can lose pages not yet
written back; the database commit is the durable record, and the journal covers the time until it.)

    segment file  <dir>/<pid>-<n>.seg    records: [u32 length][u32 crc32][msgpack (ledger, log)]
    lock file     <dir>/<pid>.lock       held (flock) by the living process that owns the segments

The record writer (writer.py) commits rows to the database in append order and reports how many
are durable (`committed`); a segment whose records are all committed is deleted, and the active one
is rewound once nothing in it is pending. On start, `recover` finds segments whose lock is free
(their process is gone), reads every record with a valid checksum and hands the rows back to be
inserted; database inserts are idempotent on request id, so rows that were committed before the
crash are simply skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from .ledger import LedgerRow
from .logs import LogRow

log = logging.getLogger("sluicegate.store")

SEGMENT_BYTES = 4 * 1024 * 1024
# The active segment is rewound (reused from offset 0) once drained and at least this full.
REWIND_BYTES = 256 * 1024
_HEADER = struct.Struct("<II")
Record = tuple[LedgerRow | None, LogRow | None]
_decoder = msgspec.msgpack.Decoder(tuple[LedgerRow | None, LogRow | None])
_encoder = msgspec.msgpack.Encoder()


class _Segment:
    __slots__ = ("file", "last_seq", "map", "offset", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "w+b")  # noqa: SIM115 - kept open for the map's lifetime
        self.file.truncate(SEGMENT_BYTES)  # sparse: disk blocks are used as records arrive
        self.map = mmap.mmap(self.file.fileno(), SEGMENT_BYTES)
        self.offset = 0
        self.last_seq = 0

    def close(self, delete: bool) -> None:
        self.map.close()
        self.file.close()
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class Journal:
    """One process's journal in `directory` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.pid = 0
        self._lock_path: Path | None = None
        self._lock: Any = None
        self._count = 0
        self._sealed: list[_Segment] = []
        self._active: _Segment | None = None  # opened with the first record: building costs no I/O
        self.appended = 0  # records appended (their sequence numbers are 1..appended)
        self.committed = 0

    def _open(self) -> _Segment:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        self._lock_path = self.dir / f"{self.pid}.lock"
        self._lock = open(self._lock_path, "w")  # noqa: SIM115 - held until close()
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._active = self._new_segment()
        return self._active

    def _new_segment(self) -> _Segment:
        self._count += 1
        return _Segment(self.dir / f"{self.pid}-{self._count}.seg")

    def append(self, ledger: LedgerRow | None, log_row: LogRow | None) -> None:
        """Copy one call's rows into the map: a memcpy, no system call once the segment is open."""
        payload = _encoder.encode((ledger, log_row))
        size = _HEADER.size + len(payload)
        segment = self._active or self._open()
        if segment.offset + size + _HEADER.size > SEGMENT_BYTES:
            self._sealed.append(segment)
            segment = self._active = self._new_segment()
        start = segment.offset
        # Payload first, header last: a record is valid only once its length and checksum are there.
        segment.map[start + _HEADER.size : start + size] = payload
        segment.map[start : start + _HEADER.size] = _HEADER.pack(len(payload), zlib.crc32(payload))
        segment.offset = start + size
        self.appended += 1
        segment.last_seq = self.appended

    def commit(self, committed: int) -> None:
        """Records 1..`committed` are in the database: retire what holds nothing else."""
        self.committed = committed
        while self._sealed and self._sealed[0].last_seq <= committed:
            self._sealed.pop(0).close(delete=True)
        active = self._active
        if active is None:
            return
        if committed >= self.appended and active.offset >= REWIND_BYTES and not self._sealed:
            # Everything is durable: start the active segment over. Records left beyond the new end
            # of the log are committed ones, and replaying them is harmless (idempotent inserts).
            active.map[0 : _HEADER.size] = _HEADER.pack(0, 0)
            active.offset = 0

    def close(self, *, drained: bool) -> None:
        """At shutdown: delete the segments if every record was committed, else leave them for replay."""
        if self._active is None:
            return
        for segment in [*self._sealed, self._active]:
            segment.close(delete=drained)
        self._sealed = []
        self._active = None
        if drained and self._lock_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._lock_path.unlink()
        self._lock.close()


def orphaned(directory: str | Path) -> list[Path]:
    """Segments of processes that are gone (their lock is free), oldest first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for lock_path in folder.glob("*.lock"):
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: its process is alive
            fcntl.flock(lock, fcntl.LOCK_UN)
        found.extend(folder.glob(f"{lock_path.stem}-*.seg"))
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def read_segment(path: Path) -> Iterator[Record]:
    """Every intact record of a segment, in order; stops at the first empty or torn one."""
    with open(path, "rb") as file:
        data = file.read()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if length == 0 or end > len(data):
            return
        payload = data[offset + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return
        try:
            yield _decoder.decode(payload)
        except msgspec.DecodeError:
            return
        offset = end


def forget(paths: list[Path]) -> None:
    """Delete replayed segments and the lock files of processes with nothing left."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for path in {p.parent / f"{p.name.split('-', 1)[0]}.lock" for p in paths}:
        if not any(path.parent.glob(f"{path.stem}-*.seg")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
