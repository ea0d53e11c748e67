"""Alembic environment: runs as the owner/admin role named by FUSION_DATABASE_URL, or, in
offline mode (``fusion db upgrade --sql``), renders the SQL for Postgres without a server."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from fusion.config import Settings
from fusion.db.migrate import APP_PASSWORD_PLACEHOLDER
from fusion.db.session import driver_url
from fusion.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    config.attributes.setdefault("settings", Settings.from_env())
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    context.get_context().impl.static_output(
        "-- Fusion Stage Hub migrations, rendered offline: review, then apply with\n"
        f"--   psql -v ON_ERROR_STOP=1 -v {APP_PASSWORD_PLACEHOLDER}='...' -f FILE\n"
        f"-- No secret is written here: the fusion_app role's password is the psql variable\n"
        f"-- {APP_PASSWORD_PLACEHOLDER}, read where revision 0002 sets it."
    )
    with context.begin_transaction():
        context.run_migrations()


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


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
