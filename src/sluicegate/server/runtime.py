"""Everything a request needs that is built once from a config: groups, deployments, auth, limits.

A `Runtime` is immutable once built; a config reload (issue #5) builds a new one and swaps the
reference, so in-flight requests keep the snapshot they started with.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import orjson

from ..api.openai.responses_store import ResponseStore
from ..api.passthrough import PassthroughRoutes
from ..auth.principal import Authenticator
from ..config.schema import Config
from ..providers.registry import make_adapter
from ..routing.deployment import Deployment
from ..routing.router import Router
from ..spend.prices import price_for
from ..store.state import state_for
from ..upstream.client import HttpTransport

log = logging.getLogger("sluicegate")


class Runtime:
    def __init__(self, config: Config, http: HttpTransport) -> None:
        self.config = config
        self.http = http
        # Database, key cache and ledger writer: per process, shared with reloaded Runtimes.
        self.state = state_for(config.database_url, config.redis_url, config.tiers)
        self.store = self.state.store
        self.keys = self.state.keys
        self.records = self.state.records
        self.authenticator = Authenticator(config.master_key, self.keys)
        self.max_body_bytes = config.server.max_body_bytes
        self.started_at = int(time.time())
        # Stored /v1/responses turns. A config reload must hand the old Runtime's store on
        # (`configure()` applies new limits), or every `previous_response_id` chain breaks.
        self.responses = ResponseStore(config.responses.retention_s, config.responses.max_stored)
        grouped: dict[str, list[Deployment]] = {}
        # A label names the deployment within its group; "#n" only when a group holds twins.
        labels = Counter((e.name, f"{e.provider}/{e.upstream_model}") for e in config.models)
        seen: Counter[tuple[str, str]] = Counter()
        for entry in config.models:
            key = (entry.name, f"{entry.provider}/{entry.upstream_model}")
            seen[key] += 1
            label = key[1] if labels[key] == 1 else f"{key[1]}#{seen[key]}"
            adapter = make_adapter(entry)
            make_transport = getattr(adapter, "make_transport", None)
            transport = make_transport() if make_transport is not None else http
            deployment = Deployment(
                label=label,
                entry=entry,
                adapter=adapter,
                transport=transport,
                timeout_s=entry.timeout_s or config.router.timeout_s,
                connect_timeout_s=entry.connect_timeout_s or config.router.connect_timeout_s,
            )
            # Resolved once here, never per request; an unknown model bills 0 (one warning, not one per call).
            deployment.price = price_for(entry)
            if deployment.price is None:
                log.warning(
                    "no price for deployment %s/%s: its calls are billed at 0 and marked unpriced; "
                    "set `price:` on the model entry",
                    entry.name,
                    label,
                )
            grouped.setdefault(entry.name, []).append(deployment)
        # Groups, strategies, health, retry budget, Redis-shared state (routing/router.py).
        self.router = Router(config, grouped)
        self.groups = self.router.groups
        # Admission before dispatch, settle + ledger + log after (pipeline/accounting.py).
        from ..pipeline.accounting import Accounting

        self.accounting = Accounting(
            config, self.groups, self.state.limiter, self.records, self.store, http, seeded=self.state.seeded
        )
        self.passthrough = PassthroughRoutes(config, self.groups)
        # /v1/models answers are the same for every call: encode them once.
        self._model_objects = {
            name: {"id": name, "object": "model", "created": self.started_at, "owned_by": group.owned_by}
            for name, group in self.groups.items()
        }
        self.models_list_body = orjson.dumps({"object": "list", "data": list(self._model_objects.values())})
        self.model_bodies = {name: orjson.dumps(obj) for name, obj in self._model_objects.items()}
