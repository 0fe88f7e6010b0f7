"""One worker process: uvicorn's server with the gateway's own SIGTERM drain and SIGHUP reload.

Plain uvicorn, as of 0.3x, waits for in-flight calls without a bound unless told, cancels them
silently at its timeout, and then re-raises SIGTERM so the process dies by the signal (exit
-15); SIGHUP kills a single-process server. Here SIGTERM drains (server/lifecycle.py) and exits
0, and SIGHUP re-reads the config (server/reload.py) without dropping a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn

from .app import Gateway
from .lifecycle import hook_reserve_s
from .reload import reload_and_log

log = logging.getLogger("sluicegate")

_POLL_S = 0.05
# Handled by the server; blocked in a worker from birth until the handlers are in place.
WORKER_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


def find_gateway(app: Any) -> Gateway | None:
    """The Gateway inside whatever middleware uvicorn wrapped around the loaded app."""
    for _ in range(8):
        if isinstance(app, Gateway):
            return app
        app = getattr(app, "app", None)
    return None


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.gateway: Gateway | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloads: set[asyncio.Task[None]] = set()
        self._reload_pending = False  # SIGHUP before the app was loaded: reload once it is

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.gateway = find_gateway(self.config.loaded_app)
        await super().startup(sockets)
        if self._reload_pending and self.gateway is not None:
            self._start_reload()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            previous = signal.signal(signal.SIGHUP, self._on_hup)
            # Signals that arrived while a supervised worker was starting are delivered now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            try:
                yield
            finally:
                signal.signal(signal.SIGHUP, previous)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Unlike uvicorn's, the signal is not recorded for re-raising after shutdown: a completed
        # drain is a clean exit (status 0), not death by SIGTERM.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C: cut whatever is still running now
            return
        self.should_exit = True
        gateway = self.gateway
        if gateway is not None:
            gateway.lifecycle.begin_drain(gateway.config.server.drain_timeout_s)
        if self._loop is not None:
            # Stop accepting now rather than at uvicorn's next 100 ms tick.
            self._loop.call_soon_threadsafe(self._stop_accepting)

    def _stop_accepting(self) -> None:
        for server in getattr(self, "servers", ()):
            server.close()

    def _on_hup(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            return
        if self._loop is None or self.gateway is None:
            self._reload_pending = True
            return
        self._loop.call_soon_threadsafe(self._start_reload)

    def _start_reload(self) -> None:
        assert self.gateway is not None
        self._reload_pending = False
        task = asyncio.ensure_future(reload_and_log(self.gateway, "SIGHUP"))
        self._reloads.add(task)  # a strong reference until done (the loop keeps only weak ones)
        task.add_done_callback(self._reloads.discard)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        gateway = self.gateway
        timeout_s = gateway.config.server.drain_timeout_s if gateway is not None else 30.0
        if gateway is not None:
            lifecycle = gateway.lifecycle
            lifecycle.begin_drain(timeout_s)  # no-op after SIGTERM; covers limit_max_requests exits
            deadline = lifecycle.deadline or time.monotonic() + timeout_s
        else:
            deadline = time.monotonic() + timeout_s
        cut_at = deadline - hook_reserve_s(timeout_s)
        state = self.server_state

        self._stop_accepting()
        for sock in sockets or []:
            sock.close()
        # Idle keep-alive connections close now; busy ones close after their current response.
        for connection in list(state.connections):
            connection.shutdown()

        # A pipelined request may start as another ends: wait again until the set stays empty.
        while state.tasks and not self.force_exit and time.monotonic() < cut_at:
            await asyncio.wait(set(state.tasks), timeout=min(_POLL_S * 4, cut_at - time.monotonic()))
        if state.tasks:
            log.warning("drain timeout: ending %d call(s) still in flight", len(state.tasks))
            if gateway is not None:
                gateway.lifecycle.cutting = True
            for task in list(state.tasks):
                task.cancel()
            await asyncio.wait(set(state.tasks), timeout=max(0.5, deadline - time.monotonic()))
        # Connections whose client stopped reading must not hold the exit: close what is left.
        for connection in list(state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for server in getattr(self, "servers", ()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), max(0.1, deadline - time.monotonic()))
        # The app's lifespan shutdown runs the shutdown hooks, then closes the HTTP client.
        await self.lifespan.shutdown()


def run_worker(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> int:
    """Serve until SIGTERM; returns the exit status (3 when the server could not start)."""
    # Until the server installs its handler, a SIGHUP must not kill a starting worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    server = DrainingServer(config)
    server.run(sockets=sockets)
    return 0 if server.started else 3
