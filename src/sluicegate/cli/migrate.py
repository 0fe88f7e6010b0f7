"""`sluicegate migrate`, and the migration `serve` runs in the parent before any worker starts."""

from __future__ import annotations

import sys

import click


def migrate_or_exit(database_url: str) -> None:
    """Apply migrations; on failure print why and exit 2 (a gateway without its tables cannot serve)."""
    import asyncio

    from ..errors import ConfigError
    from ..store.migrate import upgrade

    try:
        asyncio.run(upgrade(database_url))
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
