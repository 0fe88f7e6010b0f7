"""Config reload: re-read and validate the file, build a new Runtime, carry state over, swap.

Validation happens before anything changes: a bad file raises ConfigError (quoting the field)
and the old config keeps serving. The swap is one attribute store on the Gateway; a request
holds the `Runtime` it started with (`rt`) until it ends, so in-flight calls finish on their
snapshot. What survives a reload: the pooled HTTP client, the stored `/v1/responses` turns,
and the routing state and run-time disables of every deployment whose `models[]` entry is
unchanged (server/carry.py, server/switches.py).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import load_config
from ..errors import ConfigError
from .carry import carry_over
from .runtime import Runtime

if TYPE_CHECKING:
    from .app import Gateway

log = logging.getLogger("sluicegate")

# Set by the `--workers N` parent for its workers (server/supervisor.py): the pid to send SIGHUP
# so that an admin reload received by one worker reaches all of them.
SUPERVISOR_ENV = "SLUICEGATE_SUPERVISOR_PID"
# Settings bound when the process starts; a reload that changes them only warns.
_RESTART_FIELDS = ("server.host", "server.port", "server.workers", "database_url", "redis_url")


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    changed: bool
    models: list[str]
    deployments: int
    restart_required: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "reloaded" if self.changed else "unchanged",
            "models": self.models,
            "deployments": self.deployments,
            "restart_required": self.restart_required,
        }


def _get(config: object, dotted: str) -> object:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


async def reload_config(gateway: Gateway) -> ReloadOutcome:
    """Re-read the gateway's config file and swap it in; ConfigError leaves everything as it was."""
    config = load_config(gateway.config_path, use_search=False)
    old = gateway.runtime
    names = sorted({entry.name for entry in config.models})
    switches = gateway.switches
    # Under --workers N another worker may have switched deployments: that may be why we got SIGHUP.
    switches.load()
    if config == gateway.config:
        switches.apply(old)
        return ReloadOutcome(False, names, len(config.models))
    restart = [name for name in _RESTART_FIELDS if _get(config, name) != _get(gateway.config, name)]
    runtime = Runtime(config, gateway.http)
    carry_over(old, runtime)
    switches.apply(runtime)
    # One synchronous swap: no request can see the new config with the old runtime or vice versa.
    gateway.config, gateway.runtime = config, runtime
    # The old router's background work (Redis sync, active health checks) ends; calls still running
    # on the old Runtime keep their deployments. The new router starts with its first call.
    await old.router.aclose()
    if restart:
        log.warning("config reloaded; restart to apply: %s", ", ".join(restart))
    return ReloadOutcome(True, names, len(config.models), restart)


def notify_other_workers() -> bool:
    """Ask the `--workers N` parent to pass SIGHUP to every worker; False when running alone."""
    parent = os.environ.get(SUPERVISOR_ENV)
    if not parent or int(parent) != os.getppid():
        return False
    os.kill(int(parent), signal.SIGHUP)
    return True


async def reload_and_log(gateway: Gateway, reason: str) -> None:
    """A reload nobody waits for (SIGHUP): the outcome goes to the log."""
    try:
        outcome = await reload_config(gateway)
    except ConfigError as exc:
        log.error("config reload (%s) rejected, the old config keeps serving: %s", reason, exc.message)
        return
    except Exception:
        log.exception("config reload (%s) failed, the old config keeps serving", reason)
        return
    log.info(
        "config reload (%s): %s, %d model(s)",
        reason,
        "applied" if outcome.changed else "no change",
        len(outcome.models),
    )
