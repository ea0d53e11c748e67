"""``fusion db upgrade|downgrade``: apply or roll back migrations as the owner role."""

from __future__ import annotations

import click

from fusion.config import Settings
from fusion.db import migrate


@click.group()
def db() -> None:
    """Database schema migrations (needs FUSION_DATABASE_URL, the owner's URL)."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate to REVISION (default: the newest)."""
    migrate.upgrade(Settings.from_env(), revision)
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision", default="base")
def downgrade(revision: str) -> None:
    """Roll back to REVISION (default: base, which removes everything)."""
    migrate.downgrade(Settings.from_env(), revision)
    click.echo(f"database at {revision}")
