"""A report of an order older than the state the hub holds (by the platform's ``updated_at``)
never rolls it back: deliveries arrive unordered and can be replayed. Through the real
receiver and engine over Postgres, with Shopify deliveries."""

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

EARLIER = datetime.now(UTC) + timedelta(minutes=1)
LATER = EARLIER + timedelta(minutes=10)


def _report(order_id: int, at: datetime, **fields: Any) -> dict[str, Any]:
    return {**shopify_order(order_id, [("SKU-RED", 2)]), "updated_at": at.isoformat(), **fields}


def _run(
    admin_engine: Engine, client: FlaskClient, job_engine: JobEngine, stores: Shop, p: Any
) -> None:
    job_id = _deliver(admin_engine, client, stores.source, p, topic="orders/updated")
    assert job_engine.execute(job_id) is Outcome.COMPLETED


def _order(admin_engine: Engine) -> Any:
    with admin_engine.connect() as conn:
        return conn.execute(
            text("SELECT status, platform_updated_at, stock_restored_at, history FROM orders")
        ).one()


def test_an_older_status_delivered_after_a_newer_one_does_not_replace_it(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    # Given an order the platform reported refunded at LATER
    _run(admin_engine, client, job_engine, shop, _report(3001, LATER, financial_status="refunded"))
    assert _stock(admin_engine)["SKU-RED"] == 3
    # When its earlier "paid" report arrives after that (a new body: not a duplicate)
    _run(admin_engine, client, job_engine, shop, _report(3001, EARLIER, financial_status="paid"))
    # Then the order stays refunded at LATER, and its stock was taken once
    order = _order(admin_engine)
    assert (order.status, order.platform_updated_at) == ("refunded", LATER)
    assert _stock(admin_engine)["SKU-RED"] == 3
    # And a report newer than LATER does replace it
    newest = LATER + timedelta(minutes=1)
    _run(admin_engine, client, job_engine, shop, _report(3001, newest, financial_status="paid"))
    assert (_order(admin_engine).status, _order(admin_engine).platform_updated_at) == (
        "paid",
        newest,
    )


def test_a_replayed_paid_report_neither_uncancels_nor_takes_stock_again(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    # Given an order that took 2 and was then cancelled (the 2 came back)
    _run(admin_engine, client, job_engine, shop, _report(3002, EARLIER, financial_status="paid"))
    cancelled = _report(3002, LATER, financial_status="voided", cancelled_at=LATER.isoformat())
    _run(admin_engine, client, job_engine, shop, cancelled)
    assert _stock(admin_engine)["SKU-RED"] == 5
    pushes = _state(admin_engine)["pushes"]
    # When an older "paid" report of it comes again, under a new delivery id and a new body
    replay = _report(3002, EARLIER, financial_status="paid", note="resent")
    _run(admin_engine, client, job_engine, shop, replay)
    # Then it stays cancelled, takes nothing and pushes nothing
    order = _order(admin_engine)
    assert (order.status, order.platform_updated_at) == ("cancelled", LATER)
    assert order.stock_restored_at is not None
    assert _stock(admin_engine)["SKU-RED"] == 5
    assert _state(admin_engine)["pushes"] == pushes


def test_a_history_order_is_not_uncancelled_by_an_older_report(
    client: FlaskClient,
    admin_engine: Engine,
    job_engine: JobEngine,
    shop: Shop,  # noqa: F811
) -> None:
    # Given an order placed before the store was connected (history), reported cancelled
    placed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    cancelled = _report(
        3003, LATER, created_at=placed, financial_status="voided", cancelled_at=LATER.isoformat()
    )
    _run(admin_engine, client, job_engine, shop, cancelled)
    # When its older "paid" report arrives afterwards
    _run(
        admin_engine,
        client,
        job_engine,
        shop,
        _report(3003, EARLIER, created_at=placed, financial_status="paid"),
    )
    # Then it is still cancelled (and, history, never touched the stock)
    order = _order(admin_engine)
    assert (order.history, order.status, order.platform_updated_at) == (True, "cancelled", LATER)
    assert _stock(admin_engine)["SKU-RED"] == 5
