"""Row-level security: an org sees only itself, writes only itself, and no org sees nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from fusion.db.session import Database
from fusion.models import RLS_TABLES, TENANT_TABLES
from tests.support.seed import seed_org


@pytest.fixture
def seeded(
    admin_engine: Engine, org_a: uuid.UUID, org_b: uuid.UUID
) -> tuple[dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    return seed_org(admin_engine, org_a), seed_org(admin_engine, org_b)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_org_a_sees_none_of_org_bs_rows(
    database: Database, org_a: uuid.UUID, seeded: tuple[dict, dict], table: str
) -> None:
    rows_a, _ = seeded
    with database.org_session(org_a) as session:
        ids = set(session.execute(text(f"SELECT id FROM {table}")).scalars())
        orgs = set(session.execute(text(f"SELECT org_id FROM {table}")).scalars())
    assert ids == {rows_a[table]}
    assert orgs == {org_a}


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_org_a_cannot_insert_a_row_for_org_b(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
    seeded: tuple[dict, dict],
    table: str,
) -> None:
    _, rows_b = seeded
    with admin_engine.connect() as conn:
        row = dict(
            conn.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": rows_b[table]})
            .mappings()
            .one()
        )
    row = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}
    row["id"] = uuid.uuid4()
    for unique_text in ("public_id", "sku", "external_id", "delivery_id", "seq"):
        if unique_text in row:
            row[unique_text] = f"x{uuid.uuid4().hex[:8]}" if unique_text != "seq" else 999
    cols = ", ".join(row)
    params = ", ".join(f"CAST(:{c} AS {_pg_type(table, c, admin_engine)})" for c in row)
    with pytest.raises((ProgrammingError, DBAPIError)) as caught:
        with database.org_session(org_a) as session:
            session.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), row)
    assert "row-level security" in str(caught.value) or "permission denied" in str(caught.value)
    with admin_engine.connect() as conn:
        assert (
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE id = :id"), {"id": row["id"]}
            ).scalar_one()
            == 0
        )


def _pg_type(table: str, column: str, engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                    "WHERE a.attrelid = CAST(:t AS regclass) AND a.attname = :c"
                ),
                {"t": table, "c": column},
            ).scalar_one()
        )


# The append-only tables: the application role may not UPDATE them at all.
APPEND_ONLY = ("audit_logs", "stock_movements")


@pytest.mark.parametrize("table", [t for t in TENANT_TABLES if t not in APPEND_ONLY])
def test_org_a_cannot_update_org_bs_rows_or_move_its_own_to_org_b(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
    seeded: tuple[dict, dict],
    table: str,
) -> None:
    rows_a, rows_b = seeded
    with database.org_session(org_a) as session:
        touched = session.execute(
            text(f"UPDATE {table} SET updated_at = now() WHERE id = :id"), {"id": rows_b[table]}
        ).rowcount
    assert touched == 0

    with pytest.raises(ProgrammingError, match="row-level security"):
        with database.org_session(org_a) as session:
            session.execute(
                text(f"UPDATE {table} SET org_id = :b WHERE id = :id"),
                {"b": org_b, "id": rows_a[table]},
            )
    with admin_engine.connect() as conn:
        owner = conn.execute(
            text(f"SELECT org_id FROM {table} WHERE id = :id"), {"id": rows_a[table]}
        ).scalar_one()
    assert owner == org_a


@pytest.mark.parametrize("table", RLS_TABLES)
def test_a_session_with_no_org_sees_no_tenant_rows(
    database: Database, seeded: tuple[dict, dict], table: str
) -> None:
    with database.system_session() as session:
        assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0


def test_the_org_setting_does_not_leak_to_the_next_user_of_a_pooled_connection(
    settings, org_a: uuid.UUID, seeded: tuple[dict, dict]
) -> None:
    single = Database(settings.app_database_url, pool_size=1, max_overflow=0)
    try:
        with single.org_session(org_a) as session:
            assert session.execute(text("SELECT count(*) FROM stores")).scalar_one() == 1
        with single.system_session() as session:
            setting = session.execute(
                text("SELECT current_setting('fusion.org_id', true)")
            ).scalar_one()
            assert setting in ("", None)
            assert session.execute(text("SELECT count(*) FROM stores")).scalar_one() == 0
        with single.engine.connect() as conn:  # outside any org transaction at all
            assert conn.execute(text("SELECT count(*) FROM stores")).scalar_one() == 0
    finally:
        single.dispose()


def test_the_application_role_is_neither_superuser_nor_bypassrls_nor_owner(
    database: Database,
) -> None:
    with database.system_session() as session:
        sup, bypass = session.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = session.execute(
            text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                "AND tableowner = current_user"
            )
        ).scalar_one()
    assert (sup, bypass, owned) == (False, False, 0)


def test_every_table_with_org_id_has_rls_enabled_forced_and_a_policy(
    admin_engine: Engine,
) -> None:
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                "  (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace "
                "  AND a.attname = 'org_id' AND NOT a.attisdropped"
            )
        ).all()
    assert {r[0] for r in rows} == set(TENANT_TABLES)
    assert [r for r in rows if not (r[1] and r[2] and r[3] >= 1)] == []


def test_a_malformed_org_setting_fails_closed(database: Database, seeded) -> None:
    with database.system_session() as session:
        session.execute(text("SELECT set_config('fusion.org_id', 'not-a-uuid', true)"))
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT count(*) FROM stores")).scalar_one()
