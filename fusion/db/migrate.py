"""Apply and roll back the Alembic migrations (``fusion db upgrade|downgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from fusion.config import Settings
from fusion.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(settings: Settings) -> Config:
    if not settings.database_url:
        raise ConfigError("FUSION_DATABASE_URL: needed to run migrations (the owner's URL)")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database named by ``settings.database_url`` to ``revision``."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    """Roll the database back to ``revision`` (``base`` removes everything the hub made)."""
    command.downgrade(alembic_config(settings), revision)
