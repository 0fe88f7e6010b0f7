"""Config reload and run-time deployment switches on an in-process Gateway: what changes, what survives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sluicegate.api.openai.responses_store import Turn
from sluicegate.config.loader import load_config
from sluicegate.errors import ConfigError, ConflictError, ModelNotFoundError, NotFoundError
from sluicegate.server.app import Gateway
from sluicegate.server.reload import reload_config
from sluicegate.server.switches import Switches

MASTER = "sk-unit-master-key-0123456789"
PAIR = [
    {"name": "pair", "provider": "mock", "model": "m-a", "mock": {"reply": "a"}},
    {"name": "pair", "provider": "mock", "model": "m-b", "mock": {"reply": "b"}},
]


def write(path: Path, models: list[dict[str, object]], **extra: object) -> None:
    # Its own database file: the default would be ./sluicegate.db in the working directory.
    database = f"sqlite:///{path.parent / 'sg.db'}"
    path.write_text(
        yaml.safe_dump({"master_key": MASTER, "database_url": database, "models": models, **extra})
    )


def start(tmp_path: Path, models: list[dict[str, object]], run_dir: Path | None = None) -> Gateway:
    path = tmp_path / "sluicegate.yaml"
    write(path, models)
    gateway = Gateway(load_config(path), str(path))
    if run_dir is not None:
        gateway.switches = Switches(str(run_dir))
    return gateway


async def test_reload_swaps_the_runtime_and_leaves_the_old_snapshot_intact(tmp_path: Path) -> None:
    """A reload that adds a model builds a new Runtime; a request holding the old one sees the old config."""
    gw = start(tmp_path, PAIR)
    before = gw.runtime
    write(tmp_path / "sluicegate.yaml", [*PAIR, {"name": "extra", "provider": "mock"}])
    outcome = await reload_config(gw)
    assert outcome.changed and outcome.models == ["extra", "pair"]
    assert gw.runtime is not before and "extra" in gw.runtime.groups
    assert "extra" not in before.groups and gw.config.models[-1].name == "extra"


async def test_a_bad_file_changes_nothing_and_the_error_names_the_field(tmp_path: Path) -> None:
    """An invalid file raises ConfigError quoting the bad field; the running config is untouched."""
    gw = start(tmp_path, PAIR)
    before, config = gw.runtime, gw.config
    write(tmp_path / "sluicegate.yaml", [{"name": "pair", "provider": "mock", "weight": -1}])
    with pytest.raises(ConfigError, match=r"models\[0\]\.weight"):
        await reload_config(gw)
    assert gw.runtime is before and gw.config is config


async def test_an_unchanged_file_keeps_the_runtime(tmp_path: Path) -> None:
    """Reloading an identical config is a no-op: same Runtime object, `changed` is false."""
    gw = start(tmp_path, PAIR)
    before = gw.runtime
    assert (await reload_config(gw)).changed is False
    assert gw.runtime is before


async def test_stored_responses_survive_a_reload_with_the_new_limits(tmp_path: Path) -> None:
    """`previous_response_id` chains keep working: the new Runtime has the old store, reconfigured."""
    gw = start(tmp_path, PAIR)
    gw.runtime.responses.put("resp_1", b"{}", Turn(({"role": "user", "content": "x"},), None), None)
    write(tmp_path / "sluicegate.yaml", PAIR, responses={"retention_s": 99, "max_stored": 5})
    await reload_config(gw)
    store = gw.runtime.responses
    assert store.get("resp_1", None) is not None
    assert (store.retention_s, store.max_stored) == (99, 5)


async def test_routing_state_survives_only_for_unchanged_deployments(tmp_path: Path) -> None:
    """Health and latency of a deployment with an unchanged entry carry over; a changed entry starts fresh."""
    gw = start(tmp_path, PAIR)
    old_a, old_b = gw.runtime.groups["pair"].deployments
    for deployment in (old_a, old_b):
        deployment.health.times_ejected = 3
        deployment.latency_ewma_s = 0.25
    changed_b = {**PAIR[1], "weight": 2}
    write(tmp_path / "sluicegate.yaml", [PAIR[0], changed_b])
    await reload_config(gw)
    new_a, new_b = gw.runtime.groups["pair"].deployments
    assert new_a is not old_a and new_a.health is old_a.health and new_a.latency_ewma_s == 0.25
    assert new_b.health.times_ejected == 0 and new_b.latency_ewma_s == 0.0


async def test_reload_stops_the_old_routers_background_work(tmp_path: Path) -> None:
    """After the swap the old router's background tasks (here an active health check) are cancelled."""
    gw = start(tmp_path, [{**PAIR[0], "health_check": {"interval_s": 60}}, PAIR[1]])
    old = gw.runtime.router
    old.start()
    background = list(old._tasks)  # private: the only handle on what start() launched
    assert background
    write(tmp_path / "sluicegate.yaml", PAIR)
    await reload_config(gw)
    assert all(task.done() for task in background)


async def test_a_changed_database_url_keeps_the_running_store_until_restart(tmp_path: Path) -> None:
    """A reload that changes `database_url` keeps the started store (its ledger rows get flushed at
    shutdown) and reports the setting as needing a restart."""
    gw = start(tmp_path, PAIR)
    before = gw.runtime.state
    write(tmp_path / "sluicegate.yaml", PAIR)
    text = (tmp_path / "sluicegate.yaml").read_text().replace("sg.db", "other.db")
    (tmp_path / "sluicegate.yaml").write_text(text)
    outcome = await reload_config(gw)
    assert outcome.restart_required == ["database_url"]
    assert gw.runtime.state is before and gw.runtime.keys is before.keys


async def test_reload_reports_settings_that_need_a_restart(tmp_path: Path) -> None:
    """Changing the port applies nothing to the listener: the outcome lists it as needing a restart."""
    gw = start(tmp_path, PAIR)
    write(tmp_path / "sluicegate.yaml", PAIR, server={"port": 9999})
    assert (await reload_config(gw)).restart_required == ["server.port"]


async def test_disable_takes_a_deployment_out_and_the_last_one_is_refused(tmp_path: Path) -> None:
    """Disabling sets `disabled` on that deployment; disabling a group's last enabled one is a 409."""
    gw = start(tmp_path, PAIR)
    a, b = gw.runtime.groups["pair"].deployments
    gw.switches.set_enabled(gw.runtime, "pair", "mock/m-a", False)
    assert a.disabled and not b.disabled
    with pytest.raises(ConflictError):
        gw.switches.set_enabled(gw.runtime, "pair", "mock/m-b", False)
    gw.switches.set_enabled(gw.runtime, "pair", "mock/m-a", True)
    assert not a.disabled and gw.switches.disabled() == []


async def test_unknown_models_and_labels_are_404(tmp_path: Path) -> None:
    """Switching a model or deployment that does not exist is a 404 naming what does."""
    gw = start(tmp_path, PAIR)
    with pytest.raises(ModelNotFoundError):
        gw.switches.set_enabled(gw.runtime, "nope", "mock/m-a", False)
    with pytest.raises(NotFoundError, match="mock/m-a, mock/m-b"):
        gw.switches.set_enabled(gw.runtime, "pair", "mock/zzz", False)


async def test_a_disable_survives_reloads_only_while_its_entry_is_unchanged(tmp_path: Path) -> None:
    """A disabled deployment stays out across a reload that leaves its entry alone, and comes back when
    its entry changes (it is then a new deployment)."""
    gw = start(tmp_path, PAIR)
    gw.switches.set_enabled(gw.runtime, "pair", "mock/m-a", False)
    write(tmp_path / "sluicegate.yaml", [PAIR[0], {**PAIR[1], "weight": 3}])
    await reload_config(gw)
    assert [d.disabled for d in gw.runtime.groups["pair"].deployments] == [True, False]
    write(tmp_path / "sluicegate.yaml", [{**PAIR[0], "mock": {"reply": "changed"}}, PAIR[1]])
    await reload_config(gw)
    assert [d.disabled for d in gw.runtime.groups["pair"].deployments] == [False, False]
    assert gw.switches.disabled() == []


async def test_workers_share_switches_through_the_run_directory(tmp_path: Path) -> None:
    """A switch made by one worker reaches another on its next reload (the SIGHUP the supervisor sends)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = start(tmp_path, PAIR, run_dir)
    second = start(tmp_path, PAIR, run_dir)
    first.switches.set_enabled(first.runtime, "pair", "mock/m-b", False)
    assert not second.runtime.groups["pair"].deployments[1].disabled
    await reload_config(second)
    assert second.runtime.groups["pair"].deployments[1].disabled
    assert b"sk-" not in (run_dir / "switches.json").read_bytes()  # names and hashes only


async def test_a_new_worker_starts_with_the_shared_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker the supervisor starts later (a replacement) applies the switches already recorded."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = start(tmp_path, PAIR, run_dir)
    first.switches.set_enabled(first.runtime, "pair", "mock/m-a", False)
    monkeypatch.setenv("SLUICEGATE_RUN_DIR", str(run_dir))
    later = start(tmp_path, PAIR)
    assert [d.disabled for d in later.runtime.groups["pair"].deployments] == [True, False]
