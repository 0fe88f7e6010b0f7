"""Shared test helpers: start a real `sluicegate serve` process and wait until it is ready."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MASTER_KEY = "sk-test-master-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request (stdlib), for inputs no SDK would send."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@dataclass
class GatewayProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 20.0) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if process.poll() is not None:
            raise RuntimeError(
                f"gateway exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        with contextlib.suppress(OSError):
            if raw_request(url, "GET", "/health/ready")[0] == 200:
                return time.perf_counter() - began
        time.sleep(0.02)
    raise RuntimeError(f"gateway not ready after {timeout} s:\n{log_path.read_text(errors='replace')}")


@contextlib.contextmanager
def run_gateway(
    tmp: Path,
    config_text: str | None,
    *,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[GatewayProcess]:
    """Start `python -m sluicegate serve` on a free port; stop it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    args = [sys.executable, "-m", "sluicegate", "serve", "--port", str(port), *extra_args]
    if config_text is not None:
        config = tmp / f"gateway-{port}.yaml"
        config.write_text(config_text)
        args += ["--config", str(config)]
    log_path = tmp / f"gateway-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    full_env.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd or tmp),
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log_path)
        yield GatewayProcess(url, process, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the whole session (tests flush what they use)."""
    from tests.services import private_redis

    with private_redis() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL cluster for the whole session."""
    from tests.services import private_postgres

    with private_postgres() as url:
        yield url
