"""The parent of `serve --workers N`: binds the port once, runs N workers, forwards signals.

uvicorn's own multi-process parent restarts every worker on SIGHUP (losing in-process state,
and every worker if the new config is bad) and waits for workers without a bound. This one:

- SIGHUP is passed to every worker, which reloads its config in place (server/reload.py); a
  worker that gets `POST /admin/config/reload` sends SIGHUP here so that all workers reload.
- SIGTERM/SIGINT close the listening socket at once (new connections are refused), pass SIGTERM
  to every worker (each drains, server/worker.py), wait for them within the drain timeout plus
  a margin, SIGKILL stragglers, and exit 0 when every worker exited cleanly.
- A worker that dies is replaced; one that fails to start stops the whole server.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.context import SpawnProcess

import uvicorn
from uvicorn._subprocess import get_subprocess  # the same spawn helper uvicorn's parent uses

from ..config import load_config
from ..errors import ConfigError
from .reload import SUPERVISOR_ENV
from .switches import RUN_DIR_ENV
from .worker import WORKER_SIGNALS, run_worker

log = logging.getLogger("uvicorn.error")

STARTUP_FAILURE = 3
# A worker's own drain ends within drain_timeout_s; this covers interpreter teardown after it.
_EXIT_MARGIN_S = 5.0


def _worker_main(config: uvicorn.Config, sockets: list[socket.socket]) -> None:
    status = run_worker(config, sockets)
    if status:
        raise SystemExit(status)


class Supervisor:
    def __init__(self, config: uvicorn.Config, drain_timeout_s: float, config_path: str | None) -> None:
        self.config = config
        self.drain_timeout_s = drain_timeout_s
        self.config_path = config_path
        self.workers: list[SpawnProcess] = []
        self._signals: list[int] = []
        self._sock: socket.socket | None = None

    def _spawn(self) -> SpawnProcess:
        assert self._sock is not None
        target = functools.partial(_worker_main, self.config)
        process = get_subprocess(self.config, target=target, sockets=[self._sock])
        # The worker inherits this mask: a SIGHUP or SIGTERM sent while it is still importing stays
        # pending (instead of killing it) until its server has installed handlers (server/worker.py).
        signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
        return process

    def run(self) -> int:
        self._sock = self.config.bind_socket()
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(handled, lambda sig, frame: self._signals.append(sig))
        # Inherited by the spawned workers: where to send SIGHUP for an admin reload, and where
        # state all workers share lives (run-time deployment switches).
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        run_dir = tempfile.mkdtemp(prefix="sluicegate-")
        os.environ[RUN_DIR_ENV] = run_dir
        try:
            return self._supervise()
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _supervise(self) -> int:
        self.workers = [self._spawn() for _ in range(self.config.workers)]
        while True:
            time.sleep(0.05)
            while self._signals:
                sig = self._signals.pop(0)
                if sig == signal.SIGHUP:
                    self._reread_drain_timeout()
                    self._forward(signal.SIGHUP)
                else:
                    return self._stop()
            if self._replace_dead():
                return self._stop(status=STARTUP_FAILURE)

    def _reread_drain_timeout(self) -> None:
        # The workers validate and report; the parent only needs the bound it waits for at exit.
        with contextlib.suppress(ConfigError):
            self.drain_timeout_s = load_config(self.config_path, use_search=False).server.drain_timeout_s

    def _forward(self, sig: int) -> None:
        for process in self.workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, sig)

    def _replace_dead(self) -> bool:
        """Restart workers that died; True when one failed at startup (restarting would loop)."""
        for index, process in enumerate(self.workers):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker [%s] failed to start; stopping", process.pid)
                return True
            log.warning("worker [%s] exited with %s; starting a new one", process.pid, process.exitcode)
            self.workers[index] = self._spawn()
        return False

    def _stop(self, status: int = 0) -> int:
        assert self._sock is not None
        # The workers hold their own copies of the listening socket and close them as they drain.
        self._sock.close()
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_timeout_s + _EXIT_MARGIN_S
        for process in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker [%s] still running after the drain timeout; killing it", process.pid)
                process.kill()
                process.join()
            if process.exitcode not in (0, None) and status == 0:
                status = 1
        return status
