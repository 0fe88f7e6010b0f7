"""The `sluicegate` command line: serve, config check, models, chat, mock-server, bench.

Heavy imports (uvicorn, rich, aiohttp) happen inside the commands that use them so that
`sluicegate serve` reaches ready quickly and `sluicegate config check` is instant.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from ..config.loader import find_config_path, load_config
from ..errors import ConfigError


@click.group()
@click.version_option(package_name="sluicegate")
def main() -> None:
    """Sluicegate: one fast OpenAI-compatible gateway in front of every LLM provider."""


def _load_or_exit(path: str | None) -> tuple[object, Path | None]:
    found = find_config_path(path)
    try:
        return load_config(found), found
    except ConfigError as exc:
        click.echo(f"config error: {exc.message}", err=True)
        sys.exit(2)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (YAML).")
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8400).")
@click.option("--workers", type=int, default=None, help="Worker processes sharing the port (default 1).")
@click.option("--dev", is_flag=True, help="Allow starting without a master key: print a generated one.")
def serve(
    config_path: str | None, host: str | None, port: int | None, workers: int | None, dev: bool
) -> None:
    """Run the gateway."""
    from ..config.schema import Config
    from ..server.serve import serve as run_server

    config, found = _load_or_exit(config_path)
    assert isinstance(config, Config)
    if not config.master_key:
        if not dev:
            click.echo(
                "refusing to start without a master key: set `master_key` in the config or "
                "SLUICEGATE_MASTER_KEY, or run `sluicegate serve --dev` for a generated one",
                err=True,
            )
            sys.exit(2)
        generated = "sk-sg-dev-" + secrets.token_urlsafe(24)
        os.environ["SLUICEGATE_MASTER_KEY"] = generated
        click.echo(f"dev mode: master key for this run: {generated}", err=True)
    # Workers are separate processes: they find the config through the environment.
    if found is not None:
        os.environ["SLUICEGATE_CONFIG"] = str(found.resolve())
    else:
        os.environ.pop("SLUICEGATE_CONFIG", None)
    bind_host = host or config.server.host
    bind_port = port or config.server.port
    n_workers = workers or config.server.workers
    if n_workers > 1 and not config.redis_url:
        # In-process counters would let each worker admit the full limit: N workers, N times the rpm.
        click.echo(
            f"refusing to start {n_workers} workers without `redis_url`: rate limits and budgets are "
            "exact across workers only through Redis; set `redis_url` in the config or run one worker",
            err=True,
        )
        sys.exit(2)
    names = sorted({m.name for m in config.models})
    click.echo(
        f"sluicegate: serving {len(names)} model(s) [{', '.join(names)}] on http://{bind_host}:{bind_port} "
        f"with {n_workers} worker(s)",
        err=True,
    )
    # Once, here in the parent, before any worker opens the database (docs/keys.md).
    from .migrate import migrate_or_exit

    migrate_or_exit(config.database_url, in_child=True)
    # SIGTERM drains in-flight calls and exits 0; SIGHUP reloads the config (docs/operations.md).
    sys.exit(
        run_server(
            bind_host,
            bind_port,
            n_workers,
            config.server.drain_timeout_s,
            os.environ.get("SLUICEGATE_CONFIG"),
        )
    )


@main.group()
def config() -> None:
    """Inspect configuration."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate a config file; errors quote the path of the bad field."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        click.echo(f"{file}: invalid: {exc.message}", err=True)
        sys.exit(1)
    groups = sorted({m.name for m in cfg.models})
    click.echo(f"{file}: ok ({len(cfg.models)} deployment(s) in {len(groups)} model group(s))")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--url", default=None, help="Show live state from the gateway at this URL (GET /admin/models).")
@click.option(
    "--key",
    default=lambda: os.environ.get("SLUICEGATE_MASTER_KEY"),
    help="Admin key for --url (default $SLUICEGATE_MASTER_KEY).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models(config_path: str | None, url: str | None, key: str | None, as_json: bool) -> None:
    """List configured models and their deployments; with --url, their live health from a gateway."""
    from ..config.schema import Config

    if url:
        from .models import show_live

        show_live(url, key, as_json)
        return
    cfg, _ = _load_or_exit(config_path)
    assert isinstance(cfg, Config)
    rows = [
        {
            "name": m.name,
            "provider": m.provider + (f" ({m.preset})" if m.preset else ""),
            "model": m.upstream_model,
            "api_base": m.api_base or "",
            "weight": m.weight,
        }
        for m in cfg.models
    ]
    if as_json:
        import orjson

        click.echo(orjson.dumps(rows).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="models")
    for column in ("name", "provider", "model", "api_base", "weight"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("name", "provider", "model", "api_base", "weight")))
    Console().print(table)


@main.command()
@click.argument("model")
@click.argument("prompt", required=False)
@click.option(
    "--url", default=lambda: os.environ.get("SLUICEGATE_URL", "http://127.0.0.1:8400"), show_default=True
)
@click.option(
    "--key",
    default=lambda: os.environ.get("SLUICEGATE_API_KEY") or os.environ.get("SLUICEGATE_MASTER_KEY"),
    help="API key (default $SLUICEGATE_API_KEY or $SLUICEGATE_MASTER_KEY).",
)
def chat(model: str, prompt: str | None, url: str, key: str | None) -> None:
    """Chat with MODEL through a running gateway, streamed; interactive without PROMPT."""
    import asyncio

    from .chat import run_chat

    if not key:
        click.echo("no API key: pass --key or set SLUICEGATE_API_KEY", err=True)
        sys.exit(2)
    sys.exit(asyncio.run(run_chat(url, key, model, prompt)))


@main.command("mock-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8401, show_default=True)
@click.option("--reply", default=None, help="Fixed reply text (default: echo the last user message).")
@click.option("--ttft-ms", type=float, default=0.0)
@click.option("--tokens-per-s", type=float, default=0.0)
@click.option("--latency-ms", type=float, default=0.0)
def mock_server(
    host: str, port: int, reply: str | None, ttft_ms: float, tokens_per_s: float, latency_ms: float
) -> None:
    """Serve the mock provider over HTTP as a fake OpenAI server (for tests and benchmarks)."""
    import uvicorn

    from ..config.schema import MockOptions
    from ..providers.mock_server import MockServerApp

    options = MockOptions(reply=reply, ttft_ms=ttft_ms, tokens_per_s=tokens_per_s, latency_ms=latency_ms)
    uvicorn.run(
        MockServerApp(options),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
        backlog=4096,
    )


@main.command()
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds per measurement.")
@click.option("--concurrency", "concurrencies", type=int, multiple=True, help="Default: 1 and 32.")
@click.option("--upstream", type=click.Choice(["auto", "nginx", "mock"]), default="auto", show_default=True)
@click.option("--loadgen", type=click.Choice(["auto", "wrk", "python"]), default="auto", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option(
    "--compare",
    "compare",
    multiple=True,
    type=click.Choice(["litellm", "portkey"]),
    help="Also measure these peers when installed (docs/benchmarks.md).",
)
@click.option("--no-stream", is_flag=True, help="Skip the streaming time-to-first-token measurement.")
@click.option("--redis", is_flag=True, help="Limits in a private redis-server (always with --workers > 1).")
@click.option("--no-master", is_flag=True, help="Skip the second gateway row measured with the master key.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def bench(
    duration: float,
    concurrencies: tuple[int, ...],
    upstream: str,
    loadgen: str,
    workers: int,
    compare: tuple[str, ...],
    no_stream: bool,
    redis: bool,
    no_master: bool,
    as_json: bool,
) -> None:
    """Measure the gateway's throughput and added latency against a direct baseline (SPEC §9).

    The `sluicegate` row calls with a virtual key carrying rpm, tpm, max_parallel and a budget, the
    spend ledger on (SQLite); `sluicegate-master` is the same process with the master key.
    """
    from ..bench.runner import BenchOptions, run_bench

    options = BenchOptions(
        duration_s=duration,
        concurrencies=concurrencies or (1, 32),
        upstream=upstream,
        loadgen=loadgen,
        workers=workers,
        compare=compare,
        stream=not no_stream,
        as_json=as_json,
        redis=redis,
        master=not no_master,
    )
    sys.exit(run_bench(options))


def _register() -> None:
    # Commands that live in their own modules (issue #4: keys, spend, migrate).
    from .keys import keys
    from .migrate import migrate
    from .spend import spend

    for command in (keys, spend, migrate):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
