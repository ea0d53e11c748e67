"""``fusion plugins``: list installed plugins and sync their contracts into the database."""

from __future__ import annotations

import sys

import click

from fusion.config import Settings
from fusion.errors import ConfigError


@click.group()
def plugins() -> None:
    """Marketplace plugins discovered through the ``fusion.plugins`` entry points."""


@plugins.command("list")
def list_plugins() -> None:
    """Show every installed plugin and its capability levels."""
    from fusion.plugins.base import Capability
    from fusion.plugins.registry import all_plugins, load_errors

    for plugin in all_plugins():
        levels = ", ".join(f"{c.value}={plugin.level(c).value}" for c in Capability)
        click.echo(f"{plugin.slug} {plugin.version} ({plugin.auth_type.value}): {levels}")
    for name, error in load_errors().items():
        click.echo(f"{name}: failed to load: {error}", err=True)


@plugins.command("sync")
def sync() -> None:
    """Write every installed plugin's contract into plugins/plugin_contracts."""
    from fusion.db.session import Database
    from fusion.plugins.registry import load_errors
    from fusion.plugins.sync import sync_plugins

    settings = Settings.from_env()
    if not settings.app_database_url:
        raise ConfigError("FUSION_DATABASE_URL: not set (the sync needs a database)")
    database = Database(
        settings.app_database_url, prepared_statements=settings.db_prepared_statements
    )
    try:
        with database.system_session() as session:
            results = sync_plugins(session)
    finally:
        database.dispose()
    for result in results:
        click.echo(f"synced {result.slug} {result.version} ({result.capabilities} capabilities)")
    errors = load_errors()
    for name, error in errors.items():
        click.echo(f"{name}: failed to load: {error}", err=True)
    if errors:
        sys.exit(1)
