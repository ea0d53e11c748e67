"""Alembic environment: runs as the owner/admin role named by FUSION_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from fusion.config import Settings
from fusion.db.session import driver_url
from fusion.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    settings = config.attributes.get("settings") or Settings.from_env()
    config.attributes["settings"] = settings
    url = config.get_main_option("sqlalchemy.url") or settings.database_url
    connectable = config.attributes.get("connection") or create_engine(
        driver_url(url), poolclass=pool.NullPool
    )
    if hasattr(connectable, "connect"):
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
