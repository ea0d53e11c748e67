"""``fusion audit verify``: recompute an org's hash chain and report the first broken entry."""

from __future__ import annotations

import sys
import uuid

import click

from fusion.audit import service as audit
from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
@click.option("--org", "org_id", required=True, type=click.UUID)
def verify(org_id: uuid.UUID) -> None:
    """Exit 0 if the org's chain holds; exit 1 naming the first entry that does not."""
    settings = Settings.from_env()
    if not settings.app_database_url:
        raise ConfigError("FUSION_DATABASE_URL: not set")
    database = Database(
        settings.app_database_url, prepared_statements=settings.db_prepared_statements
    )
    try:
        with database.org_session(org_id) as session:
            broken = audit.verify(session, org_id)
    finally:
        database.dispose()
    if broken is None:
        click.echo(f"audit chain of org {org_id}: intact")
        return
    click.echo(f"audit chain of org {org_id}: broken at entry seq={broken}", err=True)
    sys.exit(1)
