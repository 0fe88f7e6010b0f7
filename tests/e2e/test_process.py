"""The gateway as a user starts it: embedded defaults with --dev, several workers on one port, the
`chat` command, and a short smoke run of `sluicegate bench`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import orjson

from tests.conftest import MASTER_KEY, run_gateway

DEMO_ONLY = f"master_key: {MASTER_KEY}\nmodels:\n  - name: demo\n    provider: mock\n"


def test_dev_mode_on_defaults_serves_demo(tmp_path: Path) -> None:
    """`serve --dev` with no config prints a generated key, and that key works for `demo`."""
    with run_gateway(tmp_path, None, extra_args=("--dev",)) as gw:
        log = gw.log()
        key = next(
            line.split(": ")[-1].strip() for line in log.splitlines() if "master key for this run" in line
        )
        with openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0) as client:
            reply = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"


def test_two_workers_share_the_port(tmp_path: Path, redis_url: str) -> None:
    """`--workers 2` runs two processes on one port, and both serve calls."""
    workers = set()
    config = DEMO_ONLY + f"redis_url: {redis_url}\n"
    with run_gateway(tmp_path, config, extra_args=("--workers", "2")) as gw:
        for _ in range(60):
            # A fresh connection per call lets the kernel spread calls over both workers.
            with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as fresh:
                raw = fresh.chat.completions.with_raw_response.create(
                    model="demo", messages=[{"role": "user", "content": "hi"}]
                )
            workers.add(raw.headers["x-request-id"].split("-")[1])  # sg-<pid>-<n>
            if len(workers) == 2:
                break
    assert len(workers) == 2


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    """`--workers 2` without `redis_url` exits 2 naming `redis_url`: per-worker limits would multiply."""
    config = tmp_path / "sg.yaml"
    config.write_text(DEMO_ONLY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    args = ["serve", "--config", str(config), "--workers", "2", "--port", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "redis_url" in result.stderr and "workers" in result.stderr


def test_chat_command_streams_a_reply(tmp_path: Path) -> None:
    """`sluicegate chat demo "prompt"` prints the streamed answer."""
    with run_gateway(tmp_path, DEMO_ONLY) as gw:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sluicegate",
                "chat",
                "demo",
                "hello there",
                "--url",
                gw.url,
                "--key",
                MASTER_KEY,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: hello there"


def test_chat_command_reports_errors(tmp_path: Path) -> None:
    """`sluicegate chat` with an unknown model exits non-zero with the gateway's message."""
    with run_gateway(tmp_path, DEMO_ONLY) as gw:
        result = subprocess.run(
            [sys.executable, "-m", "sluicegate", "chat", "nope", "hi", "--url", gw.url, "--key", MASTER_KEY],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "error 404: the model 'nope' does not exist" in result.stderr


def test_bench_smoke(tmp_path: Path) -> None:
    """A one-second `sluicegate bench` runs end to end and every request through the gateway succeeds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", "bench", "--duration", "1", "--concurrency", "4", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    through = report["targets"]["sluicegate"]
    assert through["results"]["4"]["rps"] > 50
    assert through["results"]["4"]["errors"] == 0  # a virtual key with every limit on, never refused
    assert report["targets"]["sluicegate-master"]["results"]["4"]["errors"] == 0
    assert 0 < through["ready_s"] < 10
    assert report["stream"]["gateway_errors"] == 0
