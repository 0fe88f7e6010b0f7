"""`sluicegate migrate`, and the migration `serve` runs in the parent before any worker starts."""

from __future__ import annotations

import subprocess
import sys

import click

# Runs the upgrade in a child process (see `migrate_or_exit`).
_CHILD = (
    "import asyncio, sys; from sluicegate.store.migrate import upgrade; asyncio.run(upgrade(sys.argv[1]))"
)


def migrate_or_exit(database_url: str, *, in_child: bool = False) -> None:
    """Apply migrations; on failure print why and exit 2 (a gateway without its tables cannot serve).

    With `in_child` (what `serve` uses) the process only checks the revision, and an upgrade runs in
    a child process: Alembic and Mako cost the server ~10 MB of RSS for good if imported into it
    (SPEC §9: ≤ 80 MB per worker), and are needed only on the first start after an upgrade.
    """
    import asyncio

    from ..errors import ConfigError
    from ..store.migrate import needs_upgrade, upgrade

    try:
        if not in_child:
            asyncio.run(upgrade(database_url))
        elif asyncio.run(needs_upgrade(database_url)):
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, database_url], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
                raise RuntimeError(reason)
    except ConfigError as exc:
        click.echo(f"config error: {exc.message}", err=True)
        sys.exit(2)
    except Exception as exc:
        click.echo(f"database migration failed for {_safe(database_url)}: {exc}", err=True)
        sys.exit(2)


def _safe(database_url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = database_url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if sep and at and ":" in credentials:
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return database_url


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (YAML).")
def migrate(config_path: str | None) -> None:
    """Apply database migrations (also done automatically at start)."""
    from ..config.loader import find_config_path, load_config
    from ..errors import ConfigError
    from ..store.migrate import HEAD

    try:
        config = load_config(find_config_path(config_path))
    except ConfigError as exc:
        click.echo(f"config error: {exc.message}", err=True)
        sys.exit(2)
    migrate_or_exit(config.database_url)
    click.echo(f"database {_safe(config.database_url)} is at revision {HEAD}")
