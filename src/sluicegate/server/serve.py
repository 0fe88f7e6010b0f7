"""Start the server: one worker in this process, or the `--workers N` supervisor (SPEC §2 `serve`).

Both run the gateway's own shutdown (SIGTERM drains and exits 0) and reload (SIGHUP) instead of
uvicorn's defaults; see server/worker.py and server/supervisor.py.
"""

from __future__ import annotations

import uvicorn

APP = "sluicegate.server.app:create_app"


def uvicorn_config(host: str, port: int, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        # Client addresses are not used yet; when allowed_ips arrives (issue #4) forwarded headers
        # are read only from configured trusted proxies, not on every request by uvicorn.
        proxy_headers=False,
        backlog=4096,
    )


def serve(host: str, port: int, workers: int, drain_timeout_s: float, config_path: str | None) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit status (0 after a clean drain)."""
    config = uvicorn_config(host, port, workers)
    if workers > 1:
        from .supervisor import Supervisor

        return Supervisor(config, drain_timeout_s, config_path).run()
    from .worker import run_worker

    return run_worker(config)
