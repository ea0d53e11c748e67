"""``process_webhook`` run by the real in-process engine over Postgres: an order is stored
once, takes stock once (clamped at 0), and fans out only to real-time-capable stores."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs.context import JobContext
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.webhooks.jobs import process_webhook
from tests.webhooks.conftest import (
    ETSY_SECRET,
    SHOPIFY_SECRET,
    add_store,
    external_id,
    shopify_delivery,
    shopify_order,
)


@dataclasses.dataclass
class Shop:
    org_id: uuid.UUID
    source: uuid.UUID
    other_shopify: uuid.UUID
    etsy: uuid.UUID
    unlisted_shopify: uuid.UUID


@pytest.fixture
def shop(database: Database, settings: Settings, admin_engine: Engine, org_a: uuid.UUID) -> Shop:
    stores = Shop(
        org_a,
        add_store(database, settings, org_a, "shopify", SHOPIFY_SECRET),
        add_store(database, settings, org_a, "shopify", "other-secret"),
        add_store(database, settings, org_a, "etsy", ETSY_SECRET),
        add_store(database, settings, org_a, "shopify", "third-secret"),
    )
    with admin_engine.begin() as conn:
        product = uuid.uuid4()
        other_product = uuid.uuid4()
        conn.execute(
            text(
                "INSERT INTO products (id, org_id, title) VALUES (:p, :o, 'Tee'), (:q, :o, 'Mug')"
            ),
            {"p": product, "q": other_product, "o": org_a},
        )
        for sku, qty, prod in (
            ("SKU-RED", 5, product),
            ("SKU-BLUE", 1, product),
            ("MUG", 9, other_product),
        ):
            conn.execute(
                text("INSERT INTO product_variants (id, org_id, product_id, sku, price, "
                     "available_quantity) VALUES (:id, :o, :p, :sku, 10, :q)"),
                {"id": uuid.uuid4(), "o": org_a, "p": prod, "sku": sku, "q": qty},
            )  # fmt: skip
        for store, prod in (
            (stores.source, product),
            (stores.other_shopify, product),
            (stores.etsy, product),
            (stores.unlisted_shopify, other_product),
        ):
            conn.execute(
                text("INSERT INTO listings (id, org_id, product_id, store_id, status, external_id) "
                     "VALUES (:id, :o, :p, :s, 'published', :e)"),
                {"id": uuid.uuid4(), "o": org_a, "p": prod, "s": store, "e": f"x-{prod.hex[:6]}"},
            )  # fmt: skip
    return stores


def _deliver(
    admin_engine: Engine,
    client: FlaskClient,
    store: uuid.UUID,
    payload: dict[str, Any],
    topic: str = "orders/create",
) -> uuid.UUID:
    body, headers = shopify_delivery(payload, shop=external_id(admin_engine, store), topic=topic)
    response = client.post(f"/webhooks/shopify/{store}", data=body, headers=headers)
    assert (response.status_code, response.json) == (200, {"status": "accepted"}), response.data
    return _job_of(admin_engine, headers["X-Shopify-Webhook-Id"])


def _job_of(admin_engine: Engine, delivery_id: str) -> uuid.UUID:
    with admin_engine.connect() as conn:
        job_id = conn.execute(
            text("SELECT job_id FROM webhooks WHERE delivery_id = :d"), {"d": delivery_id}
        ).scalar_one()
    return uuid.UUID(str(job_id))


def _stock(admin_engine: Engine) -> dict[str, int]:
    with admin_engine.connect() as conn:
        rows = conn.execute(text("SELECT sku, available_quantity FROM product_variants"))
        return {sku: quantity for sku, quantity in rows}


def _state(admin_engine: Engine) -> dict[str, Any]:
    with admin_engine.connect() as conn:
        return {
            "stock": _stock(admin_engine),
            "orders": conn.execute(text("SELECT count(*) FROM orders")).scalar_one(),
            "lines": conn.execute(text("SELECT count(*) FROM order_lines")).scalar_one(),
            "pushes": {
                (store_id, job_type): payload
                for store_id, job_type, payload in conn.execute(
                    text(
                        "SELECT store_id, job_type, payload FROM jobs "
                        "WHERE job_type IN ('real_time_inventory', 'push_inventory')"
                    )
                )
            },
        }


def test_an_order_webhook_is_ingested_once_and_fans_out_to_real_time_stores(
    client: FlaskClient, admin_engine: Engine, job_engine: JobEngine, database: Database,
    settings: Settings, shop: Shop,
) -> None:  # fmt: skip
    job_id = _deliver(
        admin_engine,
        client,
        shop.source,
        shopify_order(1001, [("SKU-RED", 2), ("SKU-BLUE", 3), ("NOT-OURS", 1)]),
    )
    assert job_engine.execute(job_id) is Outcome.COMPLETED

    state = _state(admin_engine)
    assert state["stock"] == {"SKU-RED": 3, "SKU-BLUE": 0, "MUG": 9}  # BLUE clamped at 0
    assert (state["orders"], state["lines"]) == (1, 3)
    # One coalesced push to each store listing the product: real time to the Shopify stores
    # (the source too: an earlier push may have overwritten its own decrement), the push of
    # the changed SKUs to Etsy (no real-time inventory), none to the store without it.
    skus = {"skus": ["SKU-BLUE", "SKU-RED"]}
    assert state["pushes"] == {
        (shop.source, "real_time_inventory"): skus,
        (shop.other_shopify, "real_time_inventory"): skus,
        (shop.etsy, "push_inventory"): skus,
    }
    with admin_engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM webhooks")).scalar_one() == "processed"
        assert conn.execute(text("SELECT stock_applied_at IS NOT NULL FROM orders")).scalar_one()
        warnings = (
            conn.execute(
                text("SELECT message FROM job_logs WHERE job_id = :j AND level = 'warning'"),
                {"j": job_id},
            )
            .scalars()
            .all()
        )
        linked = conn.execute(
            text("SELECT count(*) FROM order_lines WHERE variant_id IS NOT NULL")
        ).scalar_one()
    assert any("SKU-BLUE" in w and "stopped at 0" in w for w in warnings), warnings
    assert any("not in the catalog" in w for w in warnings), warnings
    assert linked == 2

    # The job run again (a redelivered task), even with the delivery not yet marked done,
    # changes nothing: the order's stock_applied_at guards the stock.
    ctx = JobContext(
        job_id=job_id,
        org_id=shop.org_id,
        store_id=None,
        job_type="process_webhook",
        payload={"webhook_id": str(_webhook_id(admin_engine))},
        attempt=2,
        max_attempts=5,
        settings=settings,
        database=database,
    )
    assert process_webhook(ctx)["already_processed"] is True
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE webhooks SET status = 'received'"))
    again = process_webhook(ctx)
    assert (again["created"], again["stock_applied"], again["pushes"]) == (False, False, 0)
    assert _state(admin_engine) == state

    # The same order in another delivery (orders/paid after orders/create): still one order.
    paid = _deliver(
        admin_engine,
        client,
        shop.source,
        shopify_order(1001, [("SKU-RED", 2)]),
        topic="orders/paid",
    )
    assert job_engine.execute(paid) is Outcome.COMPLETED
    assert _state(admin_engine) == state


def _webhook_id(admin_engine: Engine) -> uuid.UUID:
    with admin_engine.connect() as conn:
        return uuid.UUID(str(conn.execute(text("SELECT id FROM webhooks")).scalar_one()))


def test_an_order_first_stored_by_the_pull_takes_its_stock_once_from_the_webhook(
    client: FlaskClient, admin_engine: Engine, job_engine: JobEngine, shop: Shop
) -> None:
    # The reconciliation pull stores orders without touching stock (stock_applied_at NULL).
    order_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orders (id, org_id, store_id, external_id, total) "
                 "VALUES (:id, :o, :s, 'gid://shopify/Order/7', 10)"),
            {"id": order_id, "o": shop.org_id, "s": shop.source},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO order_lines (id, org_id, order_id, sku, quantity) "
                 "VALUES (:id, :o, :order, 'SKU-RED', 4)"),
            {"id": uuid.uuid4(), "o": shop.org_id, "order": order_id},
        )  # fmt: skip
    job_id = _deliver(admin_engine, client, shop.source, shopify_order(7, [("SKU-RED", 4)]))
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    state = _state(admin_engine)
    assert state["stock"]["SKU-RED"] == 1
    assert (state["orders"], state["lines"]) == (1, 1)
    assert len(state["pushes"]) == 3  # the source, the other Shopify store, Etsy


def test_an_order_webhook_leaves_its_stock_change_in_the_ledger_with_its_order_and_job(
    client: FlaskClient, admin_engine: Engine, job_engine: JobEngine, shop: Shop
) -> None:
    # When an order for more SKU-BLUE than the hub holds is processed by the worker
    job_id = _deliver(
        admin_engine, client, shop.source, shopify_order(1201, [("SKU-RED", 2), ("SKU-BLUE", 3)])
    )
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    # Then each SKU has one order movement naming the order and the job, with what it took
    with admin_engine.connect() as conn:
        order_id = conn.execute(text("SELECT id FROM orders")).scalar_one()
        rows = conn.execute(
            text(
                "SELECT sku, kind::text, delta, on_hand_after, order_id, job_id, actor "
                "FROM stock_movements ORDER BY sku"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("SKU-BLUE", "order", -1, 0, order_id, job_id, "system"),  # stopped at 0: took 1
        ("SKU-RED", "order", -2, 3, order_id, job_id, "system"),
    ]
