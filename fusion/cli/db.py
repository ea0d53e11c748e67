"""``fusion db``: apply, roll back, inspect and script the migrations as the owner role."""

from __future__ import annotations

import click

from fusion.config import Settings
from fusion.db import migrate

SQL_HELP = (
    "Print the SQL instead of running it (offline: no database is contacted). "
    "REVISION may be FROM:TO."
)


@click.group()
def db() -> None:
    """Database schema migrations (needs FUSION_DATABASE_URL, the owner's URL)."""


@db.command()
@click.argument("revision", default="head")
@click.option("--sql", "as_sql", is_flag=True, help=SQL_HELP)
def upgrade(revision: str, as_sql: bool) -> None:
    """Migrate to REVISION (default: the newest)."""
    if as_sql:
        migrate.upgrade_sql(Settings.from_env(), revision)
        name = migrate.APP_PASSWORD_PLACEHOLDER
        click.echo(
            f"fusion: the script reads the fusion_app password from the psql variable {name}: "
            f"psql -v {name}=... -f FILE",
            err=True,
        )
        return
    migrate.upgrade(Settings.from_env(), revision)
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision", default="base")
@click.option("--sql", "as_sql", is_flag=True, help=SQL_HELP + " Offline, FROM:TO is required.")
def downgrade(revision: str, as_sql: bool) -> None:
    """Roll back to REVISION (default: base, which removes everything)."""
    if as_sql:
        migrate.downgrade_sql(Settings.from_env(), revision)
        return
    migrate.downgrade(Settings.from_env(), revision)
    click.echo(f"database at {revision}")


@db.command()
@click.option("--verbose", "-v", is_flag=True, help="Show each revision's details.")
def current(verbose: bool) -> None:
    """Print the revision the database is at (blank if it was never migrated)."""
    migrate.current(Settings.from_env(), verbose=verbose)


@db.command()
@click.option("--verbose", "-v", is_flag=True, help="Show each revision's details.")
def history(verbose: bool) -> None:
    """List every migration, newest first (needs no database)."""
    migrate.history(Settings.from_env(), verbose=verbose)
