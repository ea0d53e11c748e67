"""Migrations: a full round trip works, and the models and the migrations agree."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
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


def test_0012_moves_what_the_hub_recorded_from_settings_to_state_and_back(
    empty_database: Settings,
) -> None:
    # Given a store whose settings hold the pull's high-water mark next to a person's setting
    assert empty_database.database_url
    migrate.upgrade(empty_database, "0010")
    engine = make_engine(empty_database.database_url, poolclass=NullPool)
    org, store = uuid.uuid4(), uuid.uuid4()
    mark = "2026-12-01T10:00:00+00:00"
    queue = "https://sqs.us-east-1.amazonaws.com/1/q"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orgs (id, name, slug) VALUES (:id, 'Org', :slug)"),
            {"id": org, "slug": f"org-{org.hex[:8]}"},
        )
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id, settings) "
                "VALUES (:id, :org, 'amazon_sc', 'A', 'A1', CAST(:settings AS jsonb))"
            ),
            {"id": store, "org": org, "settings": json.dumps(
                {"sqs_queue_url": queue, "orders_reconciled_at": mark})},
        )  # fmt: skip

    def stored() -> tuple[Any, ...]:
        with engine.connect() as conn:
            columns = "settings, state" if "state" in _columns(conn) else "settings, NULL"
            return tuple(conn.execute(text(f"SELECT {columns} FROM stores")).one())

    # When the database is upgraded, the mark is in state and settings keep the rest
    migrate.upgrade(empty_database)
    assert stored() == ({"sqs_queue_url": queue}, {"orders_reconciled_at": mark})
    # And downgraded again, it is back in settings
    migrate.downgrade(empty_database, "0010")
    assert stored() == ({"sqs_queue_url": queue, "orders_reconciled_at": mark}, None)
    engine.dispose()


def _columns(conn: Any) -> set[str]:
    rows = conn.execute(
        text("SELECT column_name FROM information_schema.columns WHERE table_name = 'stores'")
    ).scalars()
    return set(rows)
