"""Deployments taken out of rotation by an admin, kept across reloads while their entry is unchanged.

`POST /admin/models/{name}/deployments/{label}/disable` records (group, label, fingerprint of the
`models[]` entry) here and sets `Deployment.disabled`, which the router skips. A reload applies
the records to the new Runtime: an entry that changed (or vanished) is a new deployment, so its
record is dropped. A group never loses its last enabled deployment.

Under `serve --workers N` the records also go to a small JSON file in the supervisor's run
directory (`$SLUICEGATE_RUN_DIR`), and the worker that took the admin call asks the supervisor
to SIGHUP every worker, which re-reads the file: all workers agree, and a replaced worker starts
with the same switches. The file holds names, labels and hashes, never an entry's secrets.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import orjson

from ..config.schema import ModelEntry
from ..errors import ConflictError, ModelNotFoundError, NotFoundError

if TYPE_CHECKING:
    from ..routing.deployment import Deployment
    from .runtime import Runtime

log = logging.getLogger("sluicegate")

RUN_DIR_ENV = "SLUICEGATE_RUN_DIR"
_FILE = "switches.json"


def fingerprint(entry: ModelEntry) -> str:
    # A hash of the whole entry (secrets included, resolved): any change makes it a new deployment.
    return hashlib.sha256(msgspec.json.encode(entry)).hexdigest()[:32]


def find(rt: Runtime, name: str, label: str) -> Deployment:
    group = rt.groups.get(name)
    if group is None:
        raise ModelNotFoundError(f"the model '{name}' does not exist", param="model")
    for deployment in group.deployments:
        if deployment.label == label:
            return deployment
    labels = ", ".join(d.label for d in group.deployments)
    raise NotFoundError(f"model '{name}' has no deployment '{label}' (its deployments: {labels})")


class Switches:
    """The disabled deployments of this gateway: (group, label) -> entry fingerprint."""

    __slots__ = ("_disabled", "_path")

    def __init__(self, run_dir: str | None = None) -> None:
        self._disabled: dict[tuple[str, str], str] = {}
        directory = run_dir if run_dir is not None else os.environ.get(RUN_DIR_ENV)
        self._path = Path(directory) / _FILE if directory else None
        self.load()

    @property
    def shared(self) -> bool:
        """True when other workers share these switches through the run-directory file."""
        return self._path is not None

    def disabled(self) -> list[tuple[str, str]]:
        return sorted(self._disabled)

    def set_enabled(self, rt: Runtime, name: str, label: str, enabled: bool) -> Deployment:
        """Switch one deployment of `rt` on or off; 404 when unknown, 409 for a group's last one."""
        deployment = find(rt, name, label)
        self.load()  # another worker may have switched something since: do not write over it
        if not enabled and not deployment.disabled:
            others = [d for d in rt.groups[name].deployments if d is not deployment and not d.disabled]
            if not others:
                raise ConflictError(
                    f"'{label}' is the last enabled deployment of model '{name}'; "
                    "enable another one first (a model must keep at least one)"
                )
        deployment.disabled = not enabled
        if enabled:
            self._disabled.pop((name, label), None)
        else:
            self._disabled[(name, label)] = fingerprint(deployment.entry)
        self.save()
        return deployment

    def apply(self, rt: Runtime) -> None:
        """Make `rt` match the records; forget records whose entry changed or vanished."""
        kept: dict[tuple[str, str], str] = {}
        for name, group in rt.groups.items():
            off = [
                d for d in group.deployments if self._disabled.get((name, d.label)) == fingerprint(d.entry)
            ]
            if off and len(off) == len(group.deployments):
                log.warning("every deployment of model '%s' was disabled; enabling them all", name)
                off = []
            for deployment in group.deployments:
                deployment.disabled = deployment in off
            kept.update({(name, d.label): fingerprint(d.entry) for d in off})
        if kept != self._disabled:
            self._disabled = kept
            self.save()

    # ------------------------------------------------------------------ the shared file

    def load(self) -> None:
        if self._path is None:
            return
        try:
            raw = orjson.loads(self._path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            log.error("cannot read %s (switches left as they were): %s", self._path, exc)
            return
        self._disabled = {(row["model"], row["deployment"]): row["entry"] for row in raw}

    def save(self) -> None:
        if self._path is None:
            return
        rows = [{"model": m, "deployment": d, "entry": f} for (m, d), f in sorted(self._disabled.items())]
        # Write-then-rename: a worker reading concurrently sees the old file or the new, never half.
        temporary = self._path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps(rows))
        temporary.replace(self._path)
