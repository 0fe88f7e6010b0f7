"""Config reload (POST /admin/config/reload and SIGHUP), the live model view, run-time deployment
switches and `sluicegate models --url`, on real gateway processes with one and two workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request, run_gateway

AUTH = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
PAIR = """
  - name: pair
    provider: mock
    model: m-a
    mock: {reply: "from a"}
  - name: pair
    provider: mock
    model: m-b
    mock: {reply: "from b"}
"""
LONG = """
  - name: long
    provider: mock
    mock: {reply: "one two three four five six seven eight nine ten", tokens_per_s: 8}
"""


def config(*models: str) -> str:
    return f"master_key: {MASTER_KEY}\nmodels:{''.join(models)}"


def shared_config(redis_url: str, *models: str) -> str:
    """`config` for several workers, which need Redis for their limits."""
    return config(*models) + f"\nredis_url: {redis_url}\n"


def extra(name: str) -> str:
    return f"\n  - name: {name}\n    provider: mock\n"


def config_file(gw: GatewayProcess) -> Path:
    port = gw.url.rsplit(":", 1)[1]
    return gw.log_path.parent / f"gateway-{port}.yaml"


def call(gw: GatewayProcess, method: str, path: str, body: Any = None, key: str = MASTER_KEY) -> Any:
    headers = {**AUTH, "authorization": f"Bearer {key}"}
    status, response_headers, raw = raw_request(
        gw.url, method, path, orjson.dumps(body) if body is not None else None, headers
    )
    return status, response_headers, orjson.loads(raw) if raw else None


def chat(gw: GatewayProcess, model: str) -> tuple[int, dict[str, str], Any]:
    return call(
        gw, "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "x"}]}
    )


def model_ids(gw: GatewayProcess) -> set[str]:
    status, _, body = call(gw, "GET", "/v1/models")
    assert status == 200
    return {m["id"] for m in body["data"]}


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def on_every_worker(gw: GatewayProcess, check: Callable[[dict[str, Any]], bool], workers: int = 2) -> bool:
    """True when fresh connections reach `workers` distinct workers and `check` holds on each answer."""
    seen: set[str] = set()
    for _ in range(300):
        status, _, body = call(gw, "GET", "/admin/models")  # a new connection each time
        assert status == 200
        if not check(body):
            return False
        seen.add(str(body["worker"]["pid"]))
        if len(seen) == workers:
            return True
    return False


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One single-worker gateway for this module; `gw` puts its config back before every test."""
    with run_gateway(tmp_path_factory.mktemp("reload"), config(PAIR, LONG)) as process:
        yield process


@pytest.fixture
def gw(shared: GatewayProcess) -> GatewayProcess:
    config_file(shared).write_text(config(PAIR, LONG))
    assert call(shared, "POST", "/admin/config/reload")[0] == 200
    for label in ("mock/m-a", "mock/m-b"):
        assert call(shared, "POST", f"/admin/models/pair/deployments/{label}/enable")[0] == 200
    return shared


def test_admin_reload_adds_a_model_then_removes_it(gw: GatewayProcess) -> None:
    """POST /admin/config/reload applies an added model (listed and callable) and a removed one (404)."""
    config_file(gw).write_text(config(PAIR, LONG, extra("added")))
    status, _, body = call(gw, "POST", "/admin/config/reload")
    assert status == 200 and body["status"] == "reloaded" and body["models"] == ["added", "long", "pair"]
    assert "added" in model_ids(gw)
    assert chat(gw, "added")[0] == 200
    config_file(gw).write_text(config(PAIR, LONG))
    assert call(gw, "POST", "/admin/config/reload")[0] == 200
    assert "added" not in model_ids(gw)
    assert call(gw, "GET", "/v1/models/added")[0] == 404
    assert chat(gw, "added")[0] == 404


def test_a_bad_file_is_refused_with_400_naming_the_field_and_the_old_config_keeps_serving(
    gw: GatewayProcess,
) -> None:
    """A reload of an invalid file answers 400 quoting the bad field, and nothing changes."""
    config_file(gw).write_text(config("\n  - name: other\n    provider: mock\n    wieght: 2\n"))
    status, _, body = call(gw, "POST", "/admin/config/reload")
    assert status == 400
    assert "models[0].wieght" in body["error"]["message"]
    assert body["error"]["code"] == "invalid_config"
    assert model_ids(gw) == {"pair", "long"}
    assert chat(gw, "pair")[0] == 200


def test_the_admin_endpoints_need_an_admin_key(gw: GatewayProcess) -> None:
    """Without the master key the reload, view and switch endpoints answer 401 and change nothing."""
    config_file(gw).write_text(config(PAIR, LONG, extra("added")))
    assert call(gw, "POST", "/admin/config/reload", key="sk-wrong")[0] == 401
    assert call(gw, "GET", "/admin/models", key="sk-wrong")[0] == 401
    assert call(gw, "POST", "/admin/models/pair/deployments/mock/m-a/disable", key="sk-wrong")[0] == 401
    assert "added" not in model_ids(gw)
    _, _, body = call(gw, "GET", "/admin/models")
    pair = next(group for group in body["data"] if group["name"] == "pair")
    assert not any(row["disabled"] for row in pair["deployments"])


def test_a_stream_started_before_a_reload_finishes_on_the_old_config(gw: GatewayProcess) -> None:
    """A stream in flight when its model is removed by a reload completes normally; new calls get 404."""
    done: dict[str, Any] = {}

    def stream() -> None:
        body = {"model": "long", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        done["result"] = raw_request(gw.url, "POST", "/v1/chat/completions", orjson.dumps(body), AUTH)

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(0.4)  # the stream is running (it takes ~1.2 s)
    config_file(gw).write_text(config(PAIR))
    assert call(gw, "POST", "/admin/config/reload")[0] == 200
    assert chat(gw, "long")[0] == 404
    thread.join(10)
    status, _, raw = done["result"]
    assert status == 200
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert b"ten" in raw


def test_sighup_reloads_the_config(gw: GatewayProcess) -> None:
    """SIGHUP to a single-process gateway re-reads the file: the new model appears, the process lives."""
    config_file(gw).write_text(config(PAIR, LONG, extra("added")))
    os.kill(gw.process.pid, signal.SIGHUP)
    assert eventually(lambda: "added" in model_ids(gw))
    assert gw.process.poll() is None


def test_admin_models_shows_every_deployment_and_switches_take_one_out(gw: GatewayProcess) -> None:
    """GET /admin/models lists groups and deployments with their state; disabling one sends every call
    to the other, the last enabled one cannot be disabled (409), and a disable survives a reload that
    leaves its entry unchanged."""
    status, _, body = call(gw, "GET", "/admin/models")
    assert status == 200
    assert [group["name"] for group in body["data"]] == ["pair", "long"]
    rows = {row["deployment"]: row for row in body["data"][0]["deployments"]}
    assert set(rows) == {"mock/m-a", "mock/m-b"}
    for row in rows.values():
        assert row["status"] == "healthy" and row["in_flight"] == 0 and row["weight"] == 1.0
        assert {"ejected", "times_ejected", "latency_ewma_ms", "rpm", "tpm"} <= set(row)

    status, _, body = call(gw, "POST", "/admin/models/pair/deployments/mock/m-a/disable")
    assert status == 200 and body["disabled"] is True
    served = {chat(gw, "pair")[1]["x-sluicegate-deployment"] for _ in range(6)}
    assert served == {"mock/m-b"}
    status, _, body = call(gw, "POST", "/admin/models/pair/deployments/mock/m-b/disable")
    assert status == 409 and body["error"]["code"] == "conflict"
    assert call(gw, "POST", "/admin/models/pair/deployments/mock/zz/disable")[0] == 404

    config_file(gw).write_text(config(PAIR, LONG, extra("added")))
    assert call(gw, "POST", "/admin/config/reload")[0] == 200
    _, _, body = call(gw, "GET", "/admin/models")
    states = {row["deployment"]: row["status"] for row in body["data"][0]["deployments"]}
    assert states == {"mock/m-a": "disabled", "mock/m-b": "healthy"}

    assert call(gw, "POST", "/admin/models/pair/deployments/mock/m-a/enable")[0] == 200
    served = {chat(gw, "pair")[1]["x-sluicegate-deployment"] for _ in range(6)}
    assert served == {"mock/m-a", "mock/m-b"}


def models_command(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env["COLUMNS"] = "200"  # rich would otherwise shorten the cells to 80 columns
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "models", "--url", gw.url, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_models_command_shows_live_state_from_a_running_gateway(gw: GatewayProcess) -> None:
    """`sluicegate models --url --json` prints the gateway's live view; the table names each deployment."""
    call(gw, "POST", "/admin/models/pair/deployments/mock/m-b/disable")
    as_json = models_command(gw, "--key", MASTER_KEY, "--json")
    table = models_command(gw, "--key", MASTER_KEY)
    assert as_json.returncode == 0, as_json.stderr
    view = orjson.loads(as_json.stdout)
    states = {row["deployment"]: row["status"] for row in view["data"][0]["deployments"]}
    assert states == {"mock/m-a": "healthy", "mock/m-b": "disabled"}
    assert table.returncode == 0, table.stderr
    assert "mock/m-a" in table.stdout and "disabled" in table.stdout


def test_models_command_with_a_wrong_key_fails_clearly(gw: GatewayProcess) -> None:
    """`sluicegate models --url` with a bad key exits 1 and prints the gateway's 401."""
    result = models_command(gw, "--key", "sk-nope")
    assert result.returncode == 1
    assert "error 401" in result.stderr


def test_with_two_workers_sighup_admin_reload_and_switches_reach_every_worker(
    tmp_path: Path, redis_url: str
) -> None:
    """Under `--workers 2`: SIGHUP to the parent reloads both workers; an admin reload taken by one
    worker reaches the other; a deployment disabled through one worker is disabled in both."""

    def has(name: str) -> Callable[[dict[str, Any]], bool]:
        return lambda body: any(group["name"] == name for group in body["data"])

    with run_gateway(tmp_path, shared_config(redis_url, PAIR), extra_args=("--workers", "2")) as gw:
        config_file(gw).write_text(shared_config(redis_url, PAIR, extra("by-sighup")))
        os.kill(gw.process.pid, signal.SIGHUP)
        time.sleep(0.5)
        assert on_every_worker(gw, has("by-sighup"))

        config_file(gw).write_text(shared_config(redis_url, PAIR, extra("by-sighup"), extra("by-admin")))
        status, _, body = call(gw, "POST", "/admin/config/reload")
        assert status == 200 and body["workers"] == "all"
        time.sleep(0.5)
        assert on_every_worker(gw, has("by-admin"))

        status, _, body = call(gw, "POST", "/admin/models/pair/deployments/mock/m-a/disable")
        assert status == 200 and body["workers"] == "all"
        time.sleep(0.5)

        def disabled(body: dict[str, Any]) -> bool:
            pair = next(group for group in body["data"] if group["name"] == "pair")
            return [row["disabled"] for row in pair["deployments"]] == [True, False]

        assert on_every_worker(gw, disabled)
