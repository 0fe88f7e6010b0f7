"""What a config reload hands from the old Runtime to the new one.

The pooled HTTP client is shared by construction (both runtimes get the Gateway's), and so are
the database, key cache and ledger writer (`store.state.state_for`, kept even when their URLs
change). Here: the stored `/v1/responses` turns (new limits applied), and the routing state of
every deployment whose `models[]` entry did not change — same group, same label, equal entry:
its health and ejection record, latency EWMAs and rolling usage. A changed entry is a new
deployment and starts fresh. In-flight counts are not carried: calls still running on the old
Runtime settle on the old Deployment objects. Run-time disables are re-applied by switches.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..auth.principal import Authenticator
from ..routing.deployment import Deployment
from .runtime import Runtime

# Deployment attributes that describe the upstream's behaviour, not the config.
CARRIED = (
    "health",
    "usage",
    "latency_ewma_s",
    "latency_at",
    "ttft_ewma_s",
    "ttft_at",
    "shared_requests",
    "shared_tokens",
)


def _deployments(rt: Runtime) -> Iterator[tuple[str, Deployment]]:
    for name, group in rt.groups.items():
        for deployment in group.deployments:
            yield name, deployment


def unchanged_pairs(old: Runtime, new: Runtime) -> Iterator[tuple[Deployment, Deployment]]:
    """(old, new) for each deployment present in both runtimes with an identical entry."""
    before = {(name, d.label): d for name, d in _deployments(old)}
    for name, deployment in _deployments(new):
        previous = before.get((name, deployment.label))
        if previous is not None and previous.entry == deployment.entry:
            yield previous, deployment


def keep_process_state(old: Runtime, new: Runtime) -> None:
    """A changed `database_url`/`redis_url` applies at restart (reload reports it): until then the
    new Runtime keeps the started database, key cache and ledger writer, which the shutdown hooks
    flush and close. A second, never-started set would drop ledger rows."""
    if new.state is old.state:
        return
    new.state, new.store, new.keys, new.records = old.state, old.store, old.keys, old.records
    new.authenticator = Authenticator(new.config.master_key, old.keys)
    old.keys.set_tiers(new.config.tiers)


def carry_over(old: Runtime, new: Runtime) -> None:
    keep_process_state(old, new)
    responses = old.responses
    responses.configure(new.config.responses.retention_s, new.config.responses.max_stored)
    new.responses = responses
    # Health counts against the ejection policy's window: new rules start from a clean record.
    same_policy = old.config.router.ejection == new.config.router.ejection
    carried = CARRIED if same_policy else tuple(name for name in CARRIED if name != "health")
    for previous, deployment in unchanged_pairs(old, new):
        for name in carried:
            if hasattr(previous, name):
                setattr(deployment, name, getattr(previous, name))
