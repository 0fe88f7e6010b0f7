"""`sluicegate models --url`: the live deployment state of a running gateway (GET /admin/models).

Without `--url` the command lists the config file's models (cli/main.py); with it, what the
router sees right now in the worker that answered: health, ejection, calls in flight, latency.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import Any

import click
import orjson


def fetch_models(url: str, key: str, timeout_s: float = 10.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url.rstrip("/") + "/admin/models", headers={"authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body: dict[str, Any] = orjson.loads(response.read())
    return body


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _usage(used: Any, limit: Any) -> str:
    used_text = "-" if used is None else f"{used:g}"
    return used_text if limit is None else f"{used_text}/{limit}"


def _status(row: dict[str, Any]) -> str:
    status = str(row.get("status", "?"))
    if row.get("ejected"):
        status += f" ({row.get('ejected_for_s', 0):.0f}s, x{row.get('times_ejected', 0)})"
    colour = {"healthy": "green", "disabled": "yellow"}.get(str(row.get("status")), "red")
    return f"[{colour}]{status}[/{colour}]"


def show_live(url: str, key: str | None, as_json: bool) -> None:
    if not key:
        click.echo("no admin key: pass --key or set SLUICEGATE_MASTER_KEY", err=True)
        sys.exit(2)
    try:
        body = fetch_models(url, key)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        click.echo(f"error {exc.code} from {url}: {detail}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"cannot reach {url}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(orjson.dumps(body).decode())
        return
    from rich.console import Console
    from rich.table import Table

    worker = body.get("worker") or {}
    table = Table(title=f"models at {url} (worker {worker.get('pid', '?')}, strategy {body.get('strategy')})")
    columns = ("model", "deployment", "status", "in flight", "latency ms", "ttft ms", "req/min", "tok/min")
    for column in columns:
        table.add_column(column)
    for group in body.get("data", []):
        for row in group.get("deployments", []):
            table.add_row(
                group["name"],
                str(row.get("deployment")),
                _status(row),
                str(row.get("in_flight", "-")),
                _ms(row.get("latency_ewma_ms")),
                _ms(row.get("ttft_ewma_ms")),
                _usage(row.get("requests_last_minute"), row.get("rpm")),
                _usage(row.get("tokens_last_minute"), row.get("tpm")),
            )
    Console().print(table)
