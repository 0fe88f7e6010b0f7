"""`sluicegate spend`: spend from the ledger, grouped by key, team, user, model, provider or day.

A rich table by default; `--csv` and `--json` for spreadsheets and scripts. Same connection
options as `sluicegate keys` (a running gateway, or `--direct` on the database).
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click

from .keys import connection_options, make_client, run

_COLUMNS = ("group", "requests", "input_tokens", "cached_tokens", "output_tokens", "cost_usd")


@click.command()
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["key", "team", "user", "model", "provider", "day"]),
    default="key",
    show_default=True,
)
@click.option("--start", help="From this ISO 8601 date or date-time (UTC unless an offset is given).")
@click.option("--end", help="Until this date-time (exclusive); a bare date includes that whole day.")
@click.option("--key", "key_id", help="Only this key id.")
@click.option("--team", "team_id", help="Only this team.")
@click.option("--user", "user_id", help="Only this user.")
@click.option("--model", help="Only this model.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@connection_options
def spend(
    url: str,
    master_key: str | None,
    direct: bool,
    config_path: str | None,
    as_json: bool,
    group_by: str,
    start: str | None,
    end: str | None,
    key_id: str | None,
    team_id: str | None,
    user_id: str | None,
    model: str | None,
    as_csv: bool,
) -> None:
    """Spend report from the ledger."""
    client = make_client(url, master_key, direct, config_path)
    query = {
        "group_by": group_by,
        "start": start,
        "end": end,
        "key_id": key_id,
        "team_id": team_id,
        "user_id": user_id,
        "model": model,
    }
    report: dict[str, Any] = run(client, "GET", "/admin/spend", query)
    rows = report["data"]
    if as_json:
        click.echo(json.dumps(report))
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(_COLUMNS)
        for row in rows:
            writer.writerow([row.get(c) if row.get(c) is not None else "" for c in _COLUMNS])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"spend by {group_by}")
    table.add_column(group_by)
    for column in _COLUMNS[1:]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["group"]) if row["group"] is not None else "(none)",
            f"{row['requests']:,}",
            f"{row['input_tokens']:,}",
            f"{row['cached_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"${row['cost_usd']:.6f}",
        )
    total = sum(r["cost_usd"] for r in rows)
    table.add_section()
    table.add_row("total", f"{sum(r['requests'] for r in rows):,}", "", "", "", f"${total:.6f}")
    Console().print(table)
