"""Private Redis and Postgres servers for tests, started from the machine's binaries.

Each server runs on a random free port with its data in a temporary directory, so tests never
depend on, or disturb, whatever already runs on the machine (SPEC §11). The set-up command
(`scripts/bootstrap.sh test`) installs `redis-server` and PostgreSQL from Debian packages when
they are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{what} not listening on {port} after {timeout} s")


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server (no persistence); yields its URL `redis://127.0.0.1:PORT/0`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed (the test set-up installs the redis-server package)"
        )
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="sg-redis-") as tmp:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tmp, "--logfile", os.path.join(tmp, "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_port(port, process, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb on a temp dir, trust auth, random port).

    Yields `postgresql://postgres@127.0.0.1:PORT/postgres`. Runs as the current user; as root the
    cluster is owned by the `postgres` system user, since PostgreSQL refuses to run as root.
    """
    bindir = postgres_bin_dir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL server binaries are not installed (the test set-up installs postgresql)"
        )
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="sg-postgres-")
    data = os.path.join(tmp, "data")
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(tmp, "postgres", "postgres")

    def run(args: list[str]) -> subprocess.Popen[bytes]:
        if as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    init = run(
        [str(bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
    )
    _, err = init.communicate(timeout=120)
    if init.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {err.decode(errors='replace')}")
    server = run(
        [str(bindir / "postgres"), "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", tmp,
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200"],
    )  # fmt: skip
    try:
        _wait_port(port, server, "postgres", timeout=60)
        # The port opens a moment before the server accepts logins; pg_isready confirms it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ok = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
                capture_output=True,
                check=False,
            )
            if ok.returncode == 0:
                break
            time.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
