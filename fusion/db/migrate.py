"""The Alembic migrations as ``fusion db`` runs them: upgrade, downgrade, current, history,
and offline SQL scripts for a DBA to review and apply.

Offline scripts never carry a secret. Where a migration needs a value only known when it is
applied (the application role's password), the script reads the psql variable named by
:data:`APP_PASSWORD_PLACEHOLDER` and says so in a comment at its top:
``psql -v fusion_app_password=... -f upgrade.sql``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from fusion.config import Settings
from fusion.errors import ConfigError

# The psql variable an offline script reads the fusion_app role's password from.
APP_PASSWORD_PLACEHOLDER = "fusion_app_password"  # noqa: S105 (a variable name, not a secret)
# Offline scripts are rendered for this dialect; no server is contacted.
OFFLINE_URL = "postgresql+psycopg2://"


def migrations_dir() -> Path:
    """The copy a wheel carries as ``fusion/db/migrations`` (setup.py), else ``migrations/``
    beside the source tree (a checkout, an editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(f"no migrations in {here} or beside it: the install is incomplete")


def alembic_config(settings: Settings, *, offline: bool = False) -> Config:
    """The Alembic configuration for ``settings``; raises ConfigError without an owner URL,
    unless ``offline`` (SQL rendered for Postgres, no connection)."""
    if offline:
        url = OFFLINE_URL
    elif settings.database_url:
        url = settings.database_url
    else:
        raise ConfigError("FUSION_DATABASE_URL: needed to run migrations (the owner's URL)")
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database named by ``settings.database_url`` to ``revision``."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    """Roll the database back to ``revision`` (``base`` removes everything the hub made)."""
    command.downgrade(alembic_config(settings), revision)


def upgrade_sql(settings: Settings, revision: str = "head") -> None:
    """Print the SQL of an upgrade to ``revision`` (``FROM:TO`` for a range; from base
    otherwise) without connecting anywhere; secrets become psql variables."""
    command.upgrade(alembic_config(settings, offline=True), revision, sql=True)


def downgrade_sql(settings: Settings, revision: str) -> None:
    """Print the SQL of a downgrade ``FROM:TO`` (offline, Alembic needs both ends)."""
    if ":" not in revision:
        raise ConfigError(f"an offline downgrade needs FROM:TO, got {revision!r}")
    command.downgrade(alembic_config(settings, offline=True), revision, sql=True)


def current(settings: Settings, *, verbose: bool = False) -> None:
    """Print the revision the database is at (nothing when it has never been migrated)."""
    command.current(alembic_config(settings), verbose=verbose)


def history(settings: Settings, *, verbose: bool = False) -> None:
    """Print every revision, newest first, marking the head; needs no database."""
    command.history(alembic_config(settings, offline=True), verbose=verbose)
