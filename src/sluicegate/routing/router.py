"""Deployment groups (entries sharing a `name`) and the choice of one deployment per call.

This release balances with round-robin or weighted round-robin; the other strategies,
retries, ejection and fallbacks of SPEC §8 are issue #5 and slot into `ModelGroup.choose`.
"""

from __future__ import annotations

import itertools

from .deployment import Deployment


class ModelGroup:
    __slots__ = ("_cycle", "deployments", "name", "owned_by")

    def __init__(self, name: str, deployments: list[Deployment], strategy: str) -> None:
        self.name = name
        self.deployments = deployments
        self.owned_by = deployments[0].entry.provider
        order: list[Deployment] = []
        if strategy == "weighted":
            # Smooth the cycle by repeating each deployment in proportion to its weight.
            smallest = min(d.entry.weight for d in deployments)
            for d in deployments:
                order.extend([d] * max(1, round(d.entry.weight / smallest)))
        else:
            order = list(deployments)
        self._cycle = itertools.cycle(order)

    def choose(self) -> Deployment:
        return next(self._cycle)
