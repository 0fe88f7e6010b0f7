"""`GET /admin/models` and `POST /admin/models/{name}/deployments/{label}/disable|enable`.

The view is this worker's live routing state of every model group and deployment (health,
ejection, in flight, latency EWMAs, usage against rpm/tpm) as `Deployment.state()` reports it,
plus what the config says (weight, api_base, fallbacks). Under `--workers N` the counters are the
answering worker's own; switches apply to every worker (server/switches.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import MethodNotAllowedError
from ...server.reload import notify_other_workers

if TYPE_CHECKING:
    from ...routing.deployment import Deployment
    from ...server.app import Gateway
    from ...server.runtime import Runtime

PREFIX = "/admin/models"
_DEPLOYMENTS = "/deployments/"
_ACTIONS = {"/disable": False, "/enable": True}


def deployment_view(deployment: Deployment) -> dict[str, Any]:
    state = getattr(deployment, "state", None)
    view: dict[str, Any] = (
        state()
        if state is not None
        else {
            "deployment": deployment.label,
            "provider": deployment.entry.provider,
            "model": deployment.entry.upstream_model,
            "in_flight": deployment.in_flight,
        }
    )
    entry = deployment.entry
    view["weight"] = entry.weight
    view["api_base"] = entry.api_base
    view.setdefault("rpm", entry.rpm)
    view.setdefault("tpm", entry.tpm)
    return view


def models_view(gateway: Gateway, rt: Runtime) -> dict[str, Any]:
    router = rt.config.router
    groups = [
        {
            "name": name,
            "owned_by": group.owned_by,
            "fallbacks": router.fallbacks.get(name, []),
            "deployments": [deployment_view(d) for d in group.deployments],
        }
        for name, group in rt.groups.items()
    ]
    return {
        "object": "list",
        "strategy": router.strategy,
        "worker": {"pid": os.getpid(), "draining": gateway.lifecycle.draining},
        "data": groups,
    }


def parse_switch(path: str) -> tuple[str, str, bool] | None:
    """`/admin/models/{name}/deployments/{label}/{disable|enable}` -> (name, label, enabled)."""
    rest = path[len(PREFIX) + 1 :]
    for suffix, enabled in _ACTIONS.items():
        if rest.endswith(suffix):
            name, found, label = rest[: -len(suffix)].partition(_DEPLOYMENTS)
            if found and name and label:
                return name, label, enabled
    return None


async def handle(gateway: Gateway, rt: Runtime, method: str, path: str) -> tuple[int, bytes] | None:
    """The answer for a models path, or None when `path` is not one of these routes."""
    if path == PREFIX:
        if method != "GET":
            raise MethodNotAllowedError(f"{method} is not allowed on {path}; use GET")
        return 200, orjson.dumps(models_view(gateway, rt))
    switch = parse_switch(path)
    if switch is None:
        return None
    if method != "POST":
        raise MethodNotAllowedError(f"{method} is not allowed on {path}; use POST")
    name, label, enabled = switch
    deployment = gateway.switches.set_enabled(rt, name, label, enabled)
    # Under --workers N the supervisor SIGHUPs every worker, which re-read the shared switches.
    everywhere = gateway.switches.shared and notify_other_workers()
    body = {"model": name, **deployment_view(deployment), "workers": "all" if everywhere else "this"}
    return 200, orjson.dumps(body)
