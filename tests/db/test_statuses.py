"""Statuses are Postgres enums: the database refuses a value outside the vocabulary, whichever
path writes it, and the SQL that compares them with literals still works."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError

from fusion.catalog.models import ProductStatus
from fusion.stores.models import StoreStatus
from fusion.webhooks.models import DeliveryStatus
from tests.support.seed import seed_org


def _add_store(admin_engine: Engine, org: uuid.UUID, status: str | None = None) -> uuid.UUID:
    store_id = uuid.uuid4()
    columns, values = "id, org_id, platform, name, external_id", ":id, :org, 'shopify', 'S', :ext"
    params: dict[str, object] = {"id": store_id, "org": org, "ext": store_id.hex}
    if status is not None:
        columns, values = f"{columns}, status", f"{values}, :status"
        params["status"] = status
    with admin_engine.begin() as conn:
        conn.execute(text(f"INSERT INTO stores ({columns}) VALUES ({values})"), params)
    return store_id


def test_a_store_with_an_unknown_status_is_refused_and_nothing_is_stored(
    admin_engine: Engine, org_a: uuid.UUID
) -> None:
    # Given the owner's connection, which no application check stands in front of
    # When it inserts a store whose status is not a StoreStatus
    with pytest.raises(DataError, match="invalid input value for enum store_status"):
        _add_store(admin_engine, org_a, status="bogus")
    # Then the org has no store
    with admin_engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM stores WHERE org_id = :o"), {"o": org_a}
        ).scalar_one()
    assert count == 0


@pytest.mark.parametrize(
    ("table", "type_name"),
    [("stores", "store_status"), ("products", "product_status"), ("webhooks", "delivery_status")],
)
def test_an_unknown_status_cannot_be_written_over_a_known_one(
    admin_engine: Engine, org_a: uuid.UUID, table: str, type_name: str
) -> None:
    # Given one row of each tenant table
    row_id = seed_org(admin_engine, org_a)[table]
    with admin_engine.connect() as conn:
        before = conn.execute(
            text(f"SELECT status::text FROM {table} WHERE id = :id"), {"id": row_id}
        ).scalar_one()
    # When its status is set to a value outside the vocabulary
    with pytest.raises(DataError, match=f"invalid input value for enum {type_name}"):
        with admin_engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {table} SET status = 'bogus' WHERE id = :id"), {"id": row_id}
            )
    # Then the row keeps its status
    with admin_engine.connect() as conn:
        after = conn.execute(
            text(f"SELECT status::text FROM {table} WHERE id = :id"), {"id": row_id}
        ).scalar_one()
    assert after == before


def test_the_defaults_are_the_enums_first_states(admin_engine: Engine, org_a: uuid.UUID) -> None:
    # Given rows inserted without a status
    rows = seed_org(admin_engine, org_a)
    # Then each column's default is a member of its enum, typed as the enum
    with admin_engine.connect() as conn:
        found = {
            table: tuple(
                conn.execute(
                    text(
                        f"SELECT status::text, pg_typeof(status)::text FROM {table} WHERE id = :id"
                    ),
                    {"id": row_id},
                ).one()
            )
            for table, row_id in (
                ("stores", rows["stores"]),
                ("products", rows["products"]),
                ("webhooks", rows["webhooks"]),
            )
        }
    assert found == {
        "stores": (StoreStatus.ACTIVE.value, "store_status"),
        "products": (ProductStatus.ACTIVE.value, "product_status"),
        "webhooks": (DeliveryStatus.RECEIVED.value, "delivery_status"),
    }


def test_stores_due_for_still_picks_only_active_stores(
    admin_engine: Engine, org_a: uuid.UUID
) -> None:
    # Given one store in each status (stores_due_for compares status with a text literal)
    by_status = {status: _add_store(admin_engine, org_a, status=status) for status in StoreStatus}
    # When the system asks which of the org's stores are due for a job type
    with admin_engine.connect() as conn:
        due = set(
            conn.execute(
                text(
                    "SELECT store_id FROM stores_due_for('sync_inventory', ARRAY['shopify']) "
                    "WHERE org_id = :o"
                ),
                {"o": org_a},
            ).scalars()
        )
    # Then only the active one is
    assert due == {by_status[StoreStatus.ACTIVE]}
