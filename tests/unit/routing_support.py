"""Helpers for the routing unit tests: routers built from YAML, scripted attempts, a stub runtime."""

from __future__ import annotations

from time import perf_counter
from types import SimpleNamespace
from typing import Any

import yaml

from sluicegate.auth.principal import MASTER
from sluicegate.config.loader import parse_config
from sluicegate.config.schema import ModelEntry
from sluicegate.errors import UpstreamStatusError
from sluicegate.pipeline.context import RequestContext
from sluicegate.providers.registry import make_adapter
from sluicegate.routing.deployment import Deployment
from sluicegate.routing.router import ModelGroup, Router


def deployment(label: str, **fields: Any) -> Deployment:
    entry = ModelEntry(name=fields.pop("name", "m"), provider="mock", **fields)
    return Deployment(label, entry, make_adapter(entry), None, 10.0, 1.0)


def group(strategy: str = "round-robin", *deployments: Deployment) -> ModelGroup:
    return ModelGroup("m", list(deployments), strategy)


def router(text: str) -> Router:
    """A Router from a YAML config; deployments are labelled `<name>/<index in group>`."""
    config = parse_config(yaml.safe_load(text))
    grouped: dict[str, list[Deployment]] = {}
    for entry in config.models:
        members = grouped.setdefault(entry.name, [])
        members.append(
            Deployment(
                f"{entry.name}/{len(members)}",
                entry,
                make_adapter(entry),
                None,
                entry.timeout_s or config.router.timeout_s,
                config.router.connect_timeout_s,
            )
        )
    return Router(config, grouped)


class NoAccounting:
    """Admission that admits everything (limits are tests/integration/test_accounting.py's)."""

    async def admit(self, ctx: RequestContext, model: str, body: Any, *, output: bool = True) -> None:
        ctx.admitted = True


def runtime(r: Router) -> Any:
    """What `dispatch` reads from a Runtime."""
    return SimpleNamespace(router=r, groups=r.groups, accounting=NoAccounting())


def context(headers: dict[bytes, bytes] | None = None) -> RequestContext:
    return RequestContext(request_id=b"t", started=perf_counter(), principal=MASTER, headers=headers or {})


def status(code: int, message: str = "boom", **headers: str) -> UpstreamStatusError:
    return UpstreamStatusError(message, upstream_status=code, headers=dict(headers))


class Script:
    """An attempt function: each deployment label answers with its queue of outcomes (else `default`).

    An outcome that is an exception is raised; anything else is returned. `calls` records labels.
    """

    def __init__(self, default: Any = "ok", **plans: list[Any]) -> None:
        self.default = default
        self.plans = {label.replace("__", "/"): list(outcomes) for label, outcomes in plans.items()}
        self.calls: list[str] = []
        self.limits: list[float] = []

    async def __call__(self, d: Deployment, limit_s: float) -> Any:
        self.calls.append(d.label)
        self.limits.append(limit_s)
        queue = self.plans.get(d.label)
        outcome = queue.pop(0) if queue else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
