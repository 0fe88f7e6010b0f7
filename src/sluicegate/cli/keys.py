"""`sluicegate keys create|list|show|update|revoke|rotate`: manage virtual keys (SPEC §2).

Through a running gateway's admin API by default, or on the database with `--direct`
(cli/admin_client.py says when to use which). Tables by default, `--json` for scripts.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .admin_client import DEFAULT_URL, AdminCallError, AdminClient, DirectAdmin, HttpAdmin

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def connection_options(func: F) -> F:
    """--url/--master-key for the HTTP mode, --direct/--config for the database mode."""
    options = [
        click.option(
            "--url",
            default=lambda: os.environ.get("SLUICEGATE_URL", DEFAULT_URL),
            show_default=DEFAULT_URL,
            help="Gateway URL (or $SLUICEGATE_URL).",
        ),
        click.option(
            "--master-key",
            default=lambda: os.environ.get("SLUICEGATE_MASTER_KEY"),
            help="Admin key (default $SLUICEGATE_MASTER_KEY).",
        ),
        click.option(
            "--direct", is_flag=True, help="Work on the database itself instead of a running gateway."
        ),
        click.option(
            "--config", "config_path", type=click.Path(dir_okay=False), help="Config file for --direct."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_client(url: str, master_key: str | None, direct: bool, config_path: str | None) -> AdminClient:
    if direct:
        return DirectAdmin(config_path)
    if not master_key:
        click.echo("no admin key: pass --master-key or set SLUICEGATE_MASTER_KEY (or use --direct)", err=True)
        sys.exit(2)
    return HttpAdmin(url, master_key)


def run(
    client: AdminClient, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None
) -> Any:
    try:
        return client.call(method, path, query, body)
    except AdminCallError as exc:
        click.echo(f"error: {exc.message}" + (f" (HTTP {exc.status})" if exc.status else ""), err=True)
        sys.exit(1)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `30d`, `2w` -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"expected a duration such as 3600, 15m, 12h or 30d, got {text!r}")
    return float(match[1]) * _UNIT_S[match[2]]


def _models(values: tuple[str, ...]) -> list[str]:
    return [m.strip() for value in values for m in value.split(",") if m.strip()]


def limit_options(func: F) -> F:
    options = [
        click.option("--alias", help="A name for the key."),
        click.option(
            "--models", "models", multiple=True, help="Allowed models, comma-separated (default: all)."
        ),
        click.option("--tier", help="A tier from the config's `tiers:` (a named model allowlist)."),
        click.option("--rpm", type=int, help="Requests per minute."),
        click.option("--tpm", type=int, help="Tokens per minute."),
        click.option("--max-parallel", type=int, help="Concurrent requests."),
        click.option("--budget-usd", type=float, help="Hard budget in USD per period."),
        click.option("--budget-period", type=click.Choice(["1h", "1d", "7d", "30d", "lifetime"])),
        click.option("--soft-budget-usd", type=float, help="Alert threshold in USD per period."),
        click.option("--metadata", help="A JSON object stored with the key."),
        click.option("--log-bodies/--no-log-bodies", default=None, help="Log request and response bodies."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def key_options(func: F) -> F:
    options = [
        click.option("--team", "team_id", help="Team id."),
        click.option("--user", "user_id", help="User id."),
        click.option("--role", type=click.Choice(["admin", "team_admin", "member", "viewer"])),
        click.option("--expires-at", help="Expiry, ISO 8601 with a timezone (2025-12-31T23:59:59Z)."),
        click.option("--ttl", help="Expire after this long: 3600, 15m, 12h, 30d."),
        click.option(
            "--allowed-ip", "allowed_ips", multiple=True, help="Allowed client address or CIDR (repeat)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _body(params: dict[str, Any]) -> dict[str, Any]:
    """Request body from the options the user gave (absent options stay absent)."""
    body: dict[str, Any] = {}
    for name in (
        "alias", "tier", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period",
        "soft_budget_usd", "team_id", "user_id", "role", "expires_at", "log_bodies",
    ):  # fmt: skip
        if params.get(name) is not None:
            body[name] = params[name]
    if params.get("models"):
        body["models"] = _models(params["models"])
    if params.get("allowed_ips"):
        body["allowed_ips"] = list(params["allowed_ips"])
    if params.get("ttl"):
        body["ttl_s"] = parse_duration(params["ttl"])
    if params.get("metadata"):
        try:
            body["metadata"] = json.loads(params["metadata"])
        except ValueError as exc:
            raise click.BadParameter(f"--metadata is not valid JSON: {exc}") from exc
    return body


@click.group()
def keys() -> None:
    """Manage virtual keys (create, list, show, update, revoke, rotate)."""


@keys.command("create")
@limit_options
@key_options
@connection_options
def create(
    url: str, master_key: str | None, direct: bool, config_path: str | None, as_json: bool, **params: Any
) -> None:
    """Create a key; its secret is printed once."""
    client = make_client(url, master_key, direct, config_path)
    key = run(client, "POST", "/admin/keys", body=_body(params))
    if as_json:
        click.echo(json.dumps(key))
        return
    show_key(key)
    click.echo(f"\nsecret (shown once, store it now):\n{key['key']}")


@keys.command("list")
@click.option("--team", "team_id", help="Only keys of this team.")
@click.option("--user", "user_id", help="Only keys of this user.")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
@click.option("--limit", type=int, default=100, show_default=True, help="Page size.")
@click.option("--all", "all_pages", is_flag=True, help="Follow every page.")
@connection_options
def list_keys(
    url: str,
    master_key: str | None,
    direct: bool,
    config_path: str | None,
    as_json: bool,
    team_id: str | None,
    user_id: str | None,
    active: bool,
    limit: int,
    all_pages: bool,
) -> None:
    """List keys (no secrets: only their prefixes)."""
    client = make_client(url, master_key, direct, config_path)
    query: dict[str, Any] = {"team_id": team_id, "user_id": user_id, "limit": limit}
    if active:
        query["include_revoked"] = False
    rows: list[dict[str, Any]] = []
    while True:
        page = run(client, "GET", "/admin/keys", query)
        rows.extend(page["data"])
        if not all_pages or not page["next_cursor"]:
            break
        query["cursor"] = page["next_cursor"]
    if as_json:
        click.echo(json.dumps({"data": rows, "next_cursor": None if all_pages else page["next_cursor"]}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"keys ({len(rows)})")
    columns = (
        "id",
        "key_prefix",
        "alias",
        "status",
        "team_id",
        "user_id",
        "role",
        "rpm",
        "tpm",
        "budget_usd",
    )
    for column in (*columns, "expires_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns), _cell(row.get("expires_at")))
    Console().print(table)
    if not all_pages and page["next_cursor"]:
        click.echo("more keys: use --all", err=True)


@keys.command("show")
@click.argument("key_id")
@connection_options
def show(
    url: str, master_key: str | None, direct: bool, config_path: str | None, as_json: bool, key_id: str
) -> None:
    """Show one key."""
    client = make_client(url, master_key, direct, config_path)
    _print_key(run(client, "GET", f"/admin/keys/{_seg(key_id)}"), as_json)


@keys.command("update")
@click.argument("key_id")
@limit_options
@key_options
@click.option(
    "--clear",
    "clear",
    multiple=True,
    help="Set a field back to none (e.g. --clear rpm --clear expires_at).",
)
@connection_options
def update(
    url: str,
    master_key: str | None,
    direct: bool,
    config_path: str | None,
    as_json: bool,
    key_id: str,
    clear: tuple[str, ...],
    **params: Any,
) -> None:
    """Change a key's limits, allowlists, owner or expiry (only the options given)."""
    body = _body(params)
    for name in clear:
        body[name.replace("-", "_")] = None
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    client = make_client(url, master_key, direct, config_path)
    _print_key(run(client, "PATCH", f"/admin/keys/{_seg(key_id)}", body=body), as_json)


@keys.command("revoke")
@click.argument("key_id")
@connection_options
def revoke(
    url: str, master_key: str | None, direct: bool, config_path: str | None, as_json: bool, key_id: str
) -> None:
    """Revoke a key at once (every gateway process refuses it within 1 s; the record stays)."""
    client = make_client(url, master_key, direct, config_path)
    _print_key(run(client, "DELETE", f"/admin/keys/{_seg(key_id)}"), as_json)


@keys.command("rotate")
@click.argument("key_id")
@click.option(
    "--grace", default="0", show_default=True, help="How long the old secret keeps working: 0, 15m, 1d."
)
@connection_options
def rotate(
    url: str,
    master_key: str | None,
    direct: bool,
    config_path: str | None,
    as_json: bool,
    key_id: str,
    grace: str,
) -> None:
    """Give a key a new secret; its id, limits and spend history stay."""
    client = make_client(url, master_key, direct, config_path)
    key = run(client, "POST", f"/admin/keys/{_seg(key_id)}/rotate", body={"grace_s": parse_duration(grace)})
    if as_json:
        click.echo(json.dumps(key))
        return
    show_key(key)
    click.echo(f"\nnew secret (shown once, store it now):\n{key['key']}")


def _seg(value: str) -> str:
    import urllib.parse

    return urllib.parse.quote(value, safe="")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _print_key(key: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(key))
    else:
        show_key(key)


def show_key(key: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, title=f"key {key['id']}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in key.items():
        if name != "key":
            table.add_row(name, _cell(value))
    Console().print(table)
