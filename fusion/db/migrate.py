"""Apply and roll back the Alembic migrations (``fusion db upgrade|downgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from fusion.config import Settings
from fusion.errors import ConfigError


def migrations_dir() -> Path:
    """The copy a wheel carries as ``fusion/db/migrations`` (setup.py), else ``migrations/``
    beside the source tree (a checkout, an editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(f"no migrations in {here} or beside it: the install is incomplete")


def alembic_config(settings: Settings) -> Config:
    if not settings.database_url:
        raise ConfigError("FUSION_DATABASE_URL: needed to run migrations (the owner's URL)")
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database named by ``settings.database_url`` to ``revision``."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    """Roll the database back to ``revision`` (``base`` removes everything the hub made)."""
    command.downgrade(alembic_config(settings), revision)
