"""Run the benchmark: upstream, gateway and load generator as separate processes on loopback.

The gateway is measured as SPEC §9 asks: a virtual key with rpm, tpm, max_parallel and a budget
(made through the admin API; no limit ever refuses a call, but every one is checked and settled),
a priced model and the spend ledger on (SQLite); limits in process, or in a private redis-server
with `--redis` (always with several workers). The same process is then measured with the master
key (no admission) as a second row.

Upstream: nginx answering a fixed chat completion when installed (the cheapest possible
provider), else `sluicegate mock-server`. Load: wrk when installed, else the in-repo aiohttp
load generator. Each concurrency level is measured directly against the upstream and through
the gateway; "added" latency is the difference of the two at the same percentile. Also:
gateway RSS after load, time from process start to ready, streamed time to first token, and
the same load against LiteLLM / Portkey when installed (see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .loadgen import BODY

MASTER_KEY = "sk-bench-master"
NGINX_REPLY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
).decode()

LITELLM_BIN = os.environ.get("SLUICEGATE_BENCH_LITELLM", "/opt/sluicegate-peers/litellm/.venv/bin/litellm")
PORTKEY_DIR = os.environ.get("SLUICEGATE_BENCH_PORTKEY", "/opt/sluicegate-peers/portkey")


@dataclass
class BenchOptions:
    duration_s: float = 10.0
    concurrencies: tuple[int, ...] = (1, 32)
    upstream: str = "auto"
    loadgen: str = "auto"
    workers: int = 1
    compare: tuple[str, ...] = ()
    stream: bool = True
    as_json: bool = False
    warmup_s: float = 1.0
    # A private redis-server for the gateway's limits (always with several workers: SPEC §3).
    redis: bool = False
    # Also measure the master key (no limits, no admission; the ledger still on) as a second row.
    master: bool = True


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    body: bytes = BODY
    pid: int | None = None
    ready_s: float | None = None
    results: dict[int, dict[str, float]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, deadline_s: float, headers: dict[str, str] | None = None) -> float:
    """Poll until `url` answers 2xx; returns seconds waited."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    began = time.perf_counter()
    while time.perf_counter() - began < deadline_s:
        try:
            conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=1)
            conn.request("GET", parsed.path or "/", headers=headers or {})
            status = conn.getresponse().status
            conn.close()
            if 200 <= status < 300:
                return time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not become ready within {deadline_s} s")


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def _nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


@contextlib.contextmanager
def upstream_server(kind: str, tmp: Path, stream_capable: bool = False) -> Iterator[tuple[str, str]]:
    """Yields (kind used, base URL ending in /v1)."""
    port = free_port()
    nginx = _nginx_binary()
    if kind in ("auto", "nginx") and nginx and not stream_capable:
        conf = tmp / "nginx.conf"
        reply = NGINX_REPLY.replace("'", "\\'")
        conf.write_text(
            f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{reply}'; }}
  }}
}}
"""
        )
        with process([nginx, "-p", str(tmp), "-c", str(conf), "-e", f"{tmp}/nginx-error.log"]):
            _wait_port(port)
            yield "nginx", f"http://127.0.0.1:{port}/v1"
        return
    if kind == "nginx":
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    with process(
        [
            sys.executable,
            "-m",
            "sluicegate",
            "mock-server",
            "--port",
            str(port),
            "--reply",
            "Hello from the benchmark upstream.",
        ]
    ):
        _wait_port(port)
        yield "mock", f"http://127.0.0.1:{port}/v1"


def _wait_port(port: int, deadline_s: float = 15.0) -> None:
    began = time.perf_counter()
    while time.perf_counter() - began < deadline_s:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listening on port {port} after {deadline_s} s")


@contextlib.contextmanager
def bare_passthrough(upstream_url: str) -> Iterator[Target]:
    """The Python floor: uvicorn+httptools+aiohttp+orjson forwarding bodies, nothing else."""
    port = free_port()
    with process([sys.executable, "-m", "sluicegate.bench.passthrough", upstream_url, str(port)]) as proc:
        _wait_port(port)
        yield Target(
            "bare-python",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"authorization": "Bearer unused"},
            pid=proc.pid,
        )


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A private redis-server (no persistence) on a free port; yields its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with process([*args, "--dir", str(tmp)]):
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"


# The virtual key of SPEC §9's measurement: every kind of limit on (none ever refuses a call).
BENCH_KEY_LIMITS = {"rpm": 100_000_000, "tpm": 10_000_000_000, "max_parallel": 100_000, "budget_usd": 1e9}


def create_key(base_url: str) -> str:
    """A virtual key with rpm, tpm, max_parallel and a budget, made through the admin API."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(base_url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
    try:
        body = orjson.dumps({"alias": "bench", **BENCH_KEY_LIMITS})
        headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
        conn.request("POST", "/admin/keys", body=body, headers=headers)
        reply = conn.getresponse()
        payload = reply.read()
    finally:
        conn.close()
    if reply.status != 201:
        raise RuntimeError(f"could not create the bench key: {reply.status} {payload[:200]!r}")
    return str(orjson.loads(payload)["key"])


@contextlib.contextmanager
def gateway(upstream_base: str, tmp: Path, workers: int, redis_url: str | None = None) -> Iterator[Target]:
    """The gateway as SPEC §9 measures it: a SQLite ledger, priced model, a virtual key with limits."""
    port = free_port()
    config = tmp / f"sluicegate-bench-{port}.yaml"
    config.write_text(
        f"""master_key: {MASTER_KEY}
database_url: sqlite:///{tmp}/bench-{port}.db
{f"redis_url: {redis_url}" if redis_url else ""}
models:
  - name: bench
    provider: openai-compatible
    model: bench
    api_base: {upstream_base}
    api_key: sk-upstream
    price: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
"""
    )
    env = {**os.environ, "SLUICEGATE_LOG_LEVEL": "WARNING"}
    began = time.perf_counter()
    with process(
        [
            sys.executable,
            "-m",
            "sluicegate",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
    ) as proc:
        waited = wait_http(f"http://127.0.0.1:{port}/health/ready", 30)
        key = create_key(f"http://127.0.0.1:{port}")
        target = Target(
            "sluicegate",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"authorization": f"Bearer {key}"},
            pid=proc.pid,
        )
        target.ready_s = time.perf_counter() - began if waited is not None else None
        yield target


@contextlib.contextmanager
def litellm(upstream_base: str, tmp: Path) -> Iterator[Target | None]:
    if not os.path.exists(LITELLM_BIN):
        yield None
        return
    port = free_port()
    config = tmp / "litellm.yaml"
    config.write_text(
        f"""model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: {upstream_base}
      api_key: sk-upstream
general_settings:
  master_key: {MASTER_KEY}
"""
    )
    # Offline and database-less (docs/benchmarks.md): bundled cost map, no telemetry, no .env, no DB/Redis.
    dropped = ("DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_MODE": "PRODUCTION",
            "LITELLM_LOG": "ERROR",
        }
    )
    log_config = tmp / "litellm-logging.json"
    # LiteLLM's uvicorn logs every request by default; ours does not, so turn its access log off too.
    log_config.write_bytes(
        orjson.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"null": {"class": "logging.NullHandler"}},
                "loggers": {"uvicorn.access": {"handlers": ["null"], "propagate": False, "level": "ERROR"}},
            }
        )
    )
    began = time.perf_counter()
    with process(
        [
            LITELLM_BIN,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
            "--log_config",
            str(log_config),
        ],
        env=env,
        cwd=str(tmp),
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120)
        target = Target(
            "litellm",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"authorization": f"Bearer {MASTER_KEY}"},
            pid=proc.pid,
        )
        target.ready_s = time.perf_counter() - began
        yield target


@contextlib.contextmanager
def portkey(upstream_base: str, tmp: Path) -> Iterator[Target | None]:
    entry = Path(PORTKEY_DIR) / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    node = shutil.which("node")
    if not entry.exists() or node is None:
        yield None
        return
    port = free_port()
    began = time.perf_counter()
    with process([node, str(entry), f"--port={port}", "--headless"], cwd=str(tmp)) as proc:
        _wait_port(port, 60)
        target = Target(
            "portkey",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {
                "authorization": "Bearer sk-upstream",
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": upstream_base,
            },
            pid=proc.pid,
        )
        target.ready_s = time.perf_counter() - began
        yield target


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 1e6
    except psutil.Error:
        return None


_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _wrk_script(tmp: Path, target: Target) -> Path:
    script = tmp / f"wrk-{target.name}.lua"
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in target.headers.items())
    body = target.body.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{body}"\n'
        f'wrk.headers["content-type"] = "application/json"\n{headers}'
    )
    return script


def measure(
    target: Target, concurrency: int, options: BenchOptions, tmp: Path, loadgen: str
) -> dict[str, float]:
    if loadgen == "wrk":
        script = _wrk_script(tmp, target)
        if options.warmup_s > 0:
            subprocess.run(
                [
                    "wrk",
                    "-t1",
                    f"-c{concurrency}",
                    f"-d{max(1, round(options.warmup_s))}s",
                    "-s",
                    str(script),
                    target.url,
                ],
                capture_output=True,
                check=False,
            )
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(options.duration_s))}s",
                "--latency",
                "-s",
                str(script),
                target.url,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        lat = {m.group(1): float(m.group(2)) * scale[m.group(3)] for m in _WRK_LATENCY.finditer(out)}
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
        return {
            "rps": rps,
            "p50_ms": lat.get("50", float("nan")),
            "p99_ms": lat.get("99", float("nan")),
            "errors": (float(non2xx.group(1)) if non2xx else 0.0)
            + (float(errors.group(1)) if errors else 0.0),
        }
    args = [
        sys.executable,
        "-m",
        "sluicegate.bench.loadgen",
        target.url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(options.duration_s),
        "--warmup",
        str(options.warmup_s),
        "--key",
        target.headers.get("authorization", "Bearer x").split(" ", 1)[1],
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return dict(orjson.loads(out.strip().splitlines()[-1]))


def measure_ttft(url: str, key: str, options: BenchOptions) -> dict[str, float]:
    args = [
        sys.executable,
        "-m",
        "sluicegate.bench.loadgen",
        url,
        "--concurrency",
        "1",
        "--stream",
        "--duration",
        str(max(1.0, options.duration_s / 2)),
        "--warmup",
        str(options.warmup_s),
        "--key",
        key,
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return dict(orjson.loads(out.strip().splitlines()[-1]))


def run_bench(options: BenchOptions) -> int:
    loadgen = options.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        sys.stderr.write("wrk is not installed (apt-get install wrk)\n")
        return 2
    report: dict[str, Any] = {
        "loadgen": loadgen,
        "workers": options.workers,
        "duration_s": options.duration_s,
    }
    use_redis = options.redis or options.workers > 1
    report["redis"] = use_redis
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        redis_url = stack.enter_context(redis_server(tmp)) if use_redis else None
        with upstream_server(options.upstream, tmp) as (kind, base):
            report["upstream"] = kind
            direct = Target("direct", f"{base}/chat/completions", {"authorization": "Bearer sk-upstream"})
            targets = [direct]
            for c in options.concurrencies:
                direct.results[c] = measure(direct, c, options, tmp, loadgen)
            with bare_passthrough(f"{base}/chat/completions") as bare:
                for c in options.concurrencies:
                    bare.results[c] = measure(bare, c, options, tmp, loadgen)
                report["bare_rss_mb"] = _rss_mb(bare.pid)
                targets.append(bare)
            with gateway(base, tmp, options.workers, redis_url) as gw:
                for c in options.concurrencies:
                    gw.results[c] = measure(gw, c, options, tmp, loadgen)
                report["gateway_rss_mb"] = _rss_mb(gw.pid)
                targets.append(gw)
                if options.master:
                    # Same process, the master key: no admission at all (the ledger is still written).
                    master = Target(
                        "sluicegate-master", gw.url, {"authorization": f"Bearer {MASTER_KEY}"}, pid=gw.pid
                    )
                    for c in options.concurrencies:
                        master.results[c] = measure(master, c, options, tmp, loadgen)
                    targets.append(master)
            for peer_name, starter in (("litellm", litellm), ("portkey", portkey)):
                if peer_name not in options.compare:
                    continue
                with starter(base, tmp) as peer:
                    if peer is None:
                        report[f"{peer_name}_missing"] = True
                        continue
                    for c in options.concurrencies:
                        peer.results[c] = measure(peer, c, options, tmp, loadgen)
                    report[f"{peer_name}_rss_mb"] = _rss_mb(peer.pid)
                    targets.append(peer)
        if options.stream:
            report["stream"] = _stream_ttft(options, tmp, redis_url)
    report["targets"] = {
        t.name: {"ready_s": t.ready_s, "results": {str(c): r for c, r in t.results.items()}} for t in targets
    }
    for t in targets[1:]:
        report["targets"][t.name]["added"] = {
            str(c): {
                "p50_ms": t.results[c]["p50_ms"] - direct.results[c]["p50_ms"],
                "p99_ms": t.results[c]["p99_ms"] - direct.results[c]["p99_ms"],
            }
            for c in t.results
        }
    gw_results = report["targets"].get("sluicegate", {}).get("results", {})
    ratios: dict[str, dict[str, float]] = {}
    for peer_name in ("bare-python", "litellm", "portkey"):
        peer_results = report["targets"].get(peer_name, {}).get("results", {})
        ratios[peer_name] = {
            c: gw_results[c]["rps"] / peer_results[c]["rps"]
            for c in gw_results
            if c in peer_results and peer_results[c]["rps"] > 0
        }
    report["throughput_ratio"] = {name: r for name, r in ratios.items() if r}
    if options.as_json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_report(report, options)
    return 0


def _stream_ttft(options: BenchOptions, tmp: Path, redis_url: str | None) -> dict[str, float]:
    """Time to first token, direct vs through the gateway, against a streaming mock upstream."""
    with (
        upstream_server("mock", tmp, stream_capable=True) as (_, base),
        gateway(base, tmp, options.workers, redis_url) as gw,
    ):
        direct = measure_ttft(f"{base}/chat/completions", "sk-upstream", options)
        through = measure_ttft(gw.url, gw.headers["authorization"].split(" ", 1)[1], options)
    return {
        "direct_p50_ms": direct["p50_ms"],
        "gateway_p50_ms": through["p50_ms"],
        "added_p50_ms": through["p50_ms"] - direct["p50_ms"],
        "gateway_errors": through["errors"],
    }


def _print_report(report: dict[str, Any], options: BenchOptions) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    table = Table(
        title=f"sluicegate bench — upstream {report['upstream']}, load {report['loadgen']}, "
        f"{options.workers} worker(s), limits {'in Redis' if report.get('redis') else 'in process'}, "
        f"{options.duration_s:g} s per run"
    )
    for column in (
        "target",
        "concurrency",
        "req/s",
        "p50 ms",
        "p99 ms",
        "added p50 ms",
        "added p99 ms",
        "errors",
        "ready s",
    ):
        table.add_column(column, justify="right")
    for name, data in report["targets"].items():
        for c, r in data["results"].items():
            added = data.get("added", {}).get(c, {})
            table.add_row(
                name,
                c,
                f"{r['rps']:.0f}",
                f"{r['p50_ms']:.3f}",
                f"{r['p99_ms']:.3f}",
                f"{added['p50_ms']:.3f}" if added else "",
                f"{added['p99_ms']:.3f}" if added else "",
                f"{r['errors']:.0f}",
                f"{data['ready_s']:.2f}" if data.get("ready_s") else "",
            )
    console.print(table)
    console.print(f"gateway RSS after load: {report.get('gateway_rss_mb', 0):.1f} MB")
    for peer in ("litellm", "portkey"):
        if report.get(f"{peer}_rss_mb"):
            console.print(f"{peer} RSS after load: {report[f'{peer}_rss_mb']:.1f} MB")
        if report.get(f"{peer}_missing"):
            console.print(f"{peer}: not installed, skipped (see docs/benchmarks.md)")
    for peer, by_c in report.get("throughput_ratio", {}).items():
        parts = ", ".join(f"c={c}: {ratio:.2f}x" for c, ratio in by_c.items())
        console.print(f"sluicegate throughput / {peer}: {parts}")
    if "stream" in report:
        s = report["stream"]
        console.print(
            f"streaming TTFT p50: direct {s['direct_p50_ms']:.3f} ms, through gateway "
            f"{s['gateway_p50_ms']:.3f} ms, added {s['added_p50_ms']:.3f} ms"
        )
