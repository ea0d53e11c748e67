"""A cancelled order gives back exactly the stock it took, once, however often and by
whichever path the cancellation arrives; an order first seen cancelled takes nothing. Run
through the real receiver and the real engine over Postgres, with Shopify deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from tests.webhooks.conftest import shopify_order
from tests.webhooks.test_processing import (  # noqa: F401  (shop is a fixture)
    Shop,
    _deliver,
    _state,
    _stock,
    shop,
)


def _cancelled(order_id: int, lines: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        **shopify_order(order_id, lines),
        "cancelled_at": "2026-11-28T11:00:00Z",
        "financial_status": "voided",
    }


def _run(
    admin_engine: Engine, client: FlaskClient, job_engine: JobEngine, stores: Shop, payload: Any
) -> None:
    job_id = _deliver(admin_engine, client, stores.source, payload, topic="orders/updated")
    assert job_engine.execute(job_id) is Outcome.COMPLETED


def _order(admin_engine: Engine) -> Any:
    with admin_engine.connect() as conn:
        return conn.execute(text("SELECT status, stock_taken, stock_restored_at FROM orders")).one()


def test_a_cancellation_gives_back_what_the_order_took_once(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    # Given an order that took 2 of SKU-RED and all 1 of SKU-BLUE (it asked for 3)
    lines = [("SKU-RED", 2), ("SKU-BLUE", 3)]
    _run(admin_engine, client, job_engine, shop, shopify_order(2001, lines))
    assert _stock(admin_engine) == {"SKU-RED": 3, "SKU-BLUE": 0, "MUG": 9}
    assert _order(admin_engine).stock_taken == {"SKU-RED": 2, "SKU-BLUE": 1}
    pushes_before = _state(admin_engine)["pushes"]
    # When the platform reports it cancelled
    _run(admin_engine, client, job_engine, shop, _cancelled(2001, lines))
    # Then exactly what was taken comes back (BLUE: 1, not 3), the order says so, and every
    # store listing the product is told: the sale's pushes, still pending, carry it (they
    # read the hub's figure when they run), so no second push is made
    assert _stock(admin_engine) == {"SKU-RED": 5, "SKU-BLUE": 1, "MUG": 9}
    order = _order(admin_engine)
    assert order.status == "cancelled" and order.stock_restored_at is not None
    pushes = _state(admin_engine)["pushes"]
    assert pushes == pushes_before
    assert set(pushes) == {
        (shop.source, "real_time_inventory"),
        (shop.other_shopify, "real_time_inventory"),
        (shop.etsy, "push_inventory"),
    }
    assert all(p == {"skus": ["SKU-BLUE", "SKU-RED"]} for p in pushes.values())
    with admin_engine.connect() as conn:
        joined = conn.execute(
            text("SELECT count(*) FROM job_logs WHERE message LIKE '%joined this pending job'")
        ).scalar_one()
    assert joined == 3
    # And the cancellation delivered again, or a late non-cancelled update, changes nothing
    _run(admin_engine, client, job_engine, shop, _cancelled(2001, lines))
    _run(admin_engine, client, job_engine, shop, shopify_order(2001, lines))
    assert _stock(admin_engine) == {"SKU-RED": 5, "SKU-BLUE": 1, "MUG": 9}
    assert _order(admin_engine).status == "cancelled"


def test_an_order_first_seen_cancelled_takes_nothing(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    _run(admin_engine, client, job_engine, shop, _cancelled(2002, [("SKU-RED", 4)]))
    # the create arriving after its cancellation (deliveries are unordered) takes nothing
    _run(admin_engine, client, job_engine, shop, shopify_order(2002, [("SKU-RED", 4)]))
    assert _stock(admin_engine) == {"SKU-RED": 5, "SKU-BLUE": 1, "MUG": 9}
    order = _order(admin_engine)
    assert order.status == "cancelled" and order.stock_taken == {}
    assert _state(admin_engine)["pushes"] == {}


def test_the_stored_status_follows_the_platform(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    _run(admin_engine, client, job_engine, shop, shopify_order(2003, [("MUG", 1)]))
    refunded = {**shopify_order(2003, [("MUG", 1)]), "financial_status": "refunded"}
    _run(admin_engine, client, job_engine, shop, refunded)
    assert _order(admin_engine).status == "refunded"
    assert _stock(admin_engine)["MUG"] == 8  # taken once, not given back: not cancelled


def test_a_history_order_takes_nothing_and_its_cancellation_gives_nothing_back(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    # Given an order placed a day before the store was connected, delivered now
    placed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    old = {**shopify_order(2004, [("SKU-RED", 2)]), "created_at": placed}
    _run(admin_engine, client, job_engine, shop, old)
    # Then it is stored as history and takes no stock
    with admin_engine.connect() as conn:
        row = conn.execute(text("SELECT history, stock_applied_at, stock_taken FROM orders")).one()
    assert (row.history, row.stock_applied_at, row.stock_taken) == (True, None, {})
    assert _stock(admin_engine) == {"SKU-RED": 5, "SKU-BLUE": 1, "MUG": 9}
    # When the platform reports it cancelled
    _run(
        admin_engine,
        client,
        job_engine,
        shop,
        {**_cancelled(2004, [("SKU-RED", 2)]), "created_at": placed},
    )
    # Then nothing comes back and nothing is pushed; the status follows the platform
    assert _stock(admin_engine) == {"SKU-RED": 5, "SKU-BLUE": 1, "MUG": 9}
    order = _order(admin_engine)
    assert (order.status, order.stock_taken, order.stock_restored_at) == ("cancelled", {}, None)
    assert _state(admin_engine)["pushes"] == {}
