"""Migrations: a full round trip works, and the models and the migrations agree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Enum, text
from sqlalchemy.pool import NullPool

from fusion.config import Settings
from fusion.db import migrate
from fusion.models import Base
from fusion.db.session import make_engine
from tests.support.servers import ScratchDatabase, admin_postgres_url


@pytest.fixture
def empty_database(hub_env: dict[str, str]) -> Iterator[Settings]:
    database = ScratchDatabase(admin_postgres_url())
    database.create()
    try:
        yield Settings.from_env({**hub_env, "FUSION_DATABASE_URL": database.url})
    finally:
        database.drop()


def _tables(url: str) -> set[str]:
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        return set(rows) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: Settings) -> None:
    assert empty_database.database_url
    migrate.upgrade(empty_database)
    assert _tables(empty_database.database_url) == set(Base.metadata.tables)

    migrate.downgrade(empty_database)
    assert _tables(empty_database.database_url) == set()

    migrate.upgrade(empty_database)
    assert _tables(empty_database.database_url) == set(Base.metadata.tables)


def test_models_and_migrations_agree(settings: Settings) -> None:
    assert settings.database_url
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_every_enum_type_has_the_models_labels_in_order(settings: Settings) -> None:
    # compare_metadata sees a column's type but not an enum's labels: compare those here.
    assert settings.database_url
    declared = {
        column.type.name: list(column.type.enums)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, Enum)
    }
    engine = make_engine(settings.database_url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) "
                "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname"
            )
        ).all()
    assert {"store_status", "product_status", "delivery_status"} <= set(declared)
    assert {name: list(labels) for name, labels in rows} == declared
