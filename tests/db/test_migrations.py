"""Migrations: a full round trip works, and the models and the migrations agree."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Enum, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from fusion.config import Settings
from fusion.db import migrate
from fusion.db.session import make_engine
from fusion.models import Base
from tests.support.servers import ScratchDatabase, admin_postgres_url


@pytest.fixture
def empty_database(settings: Settings, hub_env: dict[str, str]) -> Iterator[Settings]:
    # The run's own database (settings) is migrated first: the cluster-wide roles exist and
    # keep a dependent, so a downgrade to base here drops them from under no other worker.
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


def _insert_store(url: str, status: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        org = conn.execute(
            text(
                "INSERT INTO orgs (id, name, slug) VALUES (gen_random_uuid(), 'O', :s) RETURNING id"
            ),
            {"s": f"o-{status}"},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id, status) "
                "VALUES (gen_random_uuid(), :o, 'shopify', 'S', :s, :s)"
            ),
            {"o": org, "s": status},
        )
    engine.dispose()


def _store_statuses(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status::text, pg_typeof(status)::text FROM stores ORDER BY status::text")
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_0011_converts_the_statuses_and_stops_on_one_outside_the_vocabulary(
    empty_database: Settings,
) -> None:
    url = empty_database.database_url
    assert url
    # Given a database at 0010 with a paused store
    migrate.upgrade(empty_database, "0010")
    _insert_store(url, "paused")
    # When 0011 runs, then the store keeps its status, now typed as the enum
    migrate.upgrade(empty_database, "0011")
    assert _store_statuses(url) == [("paused", "store_status")]
    # And back at 0010 it is text again
    migrate.downgrade(empty_database, "0010")
    assert _store_statuses(url) == [("paused", "character varying")]

    # Given a store whose status is outside the vocabulary
    _insert_store(url, "frozen")
    # When 0011 runs, then it stops, naming the table and the value, and changes nothing
    with pytest.raises(DBAPIError, match=r"stores\.status holds values outside .*'frozen'"):
        migrate.upgrade(empty_database, "0011")
    assert _store_statuses(url) == [
        ("frozen", "character varying"),
        ("paused", "character varying"),
    ]


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


def test_0019_marks_the_older_repeats_of_a_body_and_then_holds_each_body_once(
    empty_database: Settings,
) -> None:
    # Given a store whose webhooks hold the same body twice (two delivery ids) and another
    assert empty_database.database_url
    migrate.upgrade(empty_database, "0018")
    engine = make_engine(empty_database.database_url, poolclass=NullPool)
    org, store = uuid.uuid4(), uuid.uuid4()
    first, repeat, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = text(
        "INSERT INTO webhooks (id, org_id, store_id, platform, delivery_id, topic, body_sha256,"
        " created_at) VALUES (:id, :org, :store, 'shopify', :d, 'orders/create', :sha,"
        " now() - make_interval(secs => :age))"
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orgs (id, name, slug) VALUES (:id, 'Org', :slug)"),
            {"id": org, "slug": f"org-{org.hex[:8]}"},
        )
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id) "
                "VALUES (:id, :org, 'shopify', 'S', 's.myshopify.com')"
            ),
            {"id": store, "org": org},
        )
        for row_id, delivery, sha, age in (
            (first, "d1", "a" * 64, 60),
            (repeat, "d2", "a" * 64, 30),
            (other, "d3", "b" * 64, 10),
        ):
            conn.execute(
                insert,
                {"id": row_id, "org": org, "store": store, "d": delivery, "sha": sha, "age": age},
            )
    # When 0019 runs
    migrate.upgrade(empty_database)
    # Then every row is kept, the later repeat marked as one of the first
    with engine.connect() as conn:
        marks = dict(conn.execute(text("SELECT id, replay_of FROM webhooks")).all())
    assert marks == {first: None, repeat: first, other: None}
    # And the same body again, under a new delivery id, is refused by the database
    with pytest.raises(DBAPIError, match="uq_webhooks_org_id_store_id_body_sha256"):
        with engine.begin() as conn:
            conn.execute(
                insert,
                {"id": uuid.uuid4(), "org": org, "store": store, "d": "d4", "sha": "a" * 64,
                 "age": 0},
            )  # fmt: skip
    # And downgraded, the marks go with their column
    migrate.downgrade(empty_database, "0018")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM webhooks")).scalar_one() == 3
    engine.dispose()


ENGINE_FUNCTIONS = ("job_claim", "job_claim_many", "job_finish_many", "job_heartbeat")


def _languages(url: str) -> dict[str, str]:
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.proname, l.lanname FROM pg_proc p JOIN pg_language l "
                "ON l.oid = p.prolang WHERE p.proname = ANY (:names)"
            ),
            {"names": list(ENGINE_FUNCTIONS)},
        ).all()
    engine.dispose()
    return dict(rows)


def test_0029_makes_the_engines_functions_plpgsql_so_their_plans_are_kept(
    empty_database: Settings,
) -> None:
    # A SECURITY DEFINER SQL function is never inlined and plans its body in every call; a
    # plpgsql one prepares it once per connection (the engine's tests check what they do).
    assert empty_database.database_url
    migrate.upgrade(empty_database, "0028")
    assert _languages(empty_database.database_url) == dict.fromkeys(ENGINE_FUNCTIONS, "sql")
    migrate.upgrade(empty_database)
    assert _languages(empty_database.database_url) == dict.fromkeys(ENGINE_FUNCTIONS, "plpgsql")
    migrate.downgrade(empty_database, "0028")
    assert _languages(empty_database.database_url) == dict.fromkeys(ENGINE_FUNCTIONS, "sql")


def _settings(url: str) -> dict[str, list[str]]:
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT proname, coalesce(proconfig, '{}') FROM pg_proc WHERE proname = ANY(:n)"),
            {"n": list(ENGINE_FUNCTIONS)},
        ).all()
    return {name: sorted(config) for name, config in rows}


def test_0030_runs_the_engines_functions_without_sequential_scans(
    empty_database: Settings,
) -> None:
    # A plan made while jobs was small would read the whole table for each call after it grew.
    assert empty_database.database_url
    migrate.upgrade(empty_database)
    at_head = ["enable_seqscan=off", "search_path=public, pg_temp"]
    assert _settings(empty_database.database_url) == dict.fromkeys(ENGINE_FUNCTIONS, at_head)
    migrate.downgrade(empty_database, "0029")
    before = ["search_path=public, pg_temp"]
    assert _settings(empty_database.database_url) == dict.fromkeys(ENGINE_FUNCTIONS, before)
