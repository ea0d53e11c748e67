"""Amazon's ORDER_CHANGE notifications reach the hub with nobody asking: beat polls every
store's SQS queue (here each second), a real worker drains it into ``webhooks`` and
``process_webhook`` turns each into an order, taking its stock once from the notification's own
lines; ``price_order`` then adds the Orders API's prices. A redelivered notification changes
nothing, and an Orders API that is down (or out of quota) delays only the prices."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.sandbox import SandboxServer
from fusion.webhooks.service import CONSUME_JOB as CONSUME_ORDER_QUEUE
from tests.api.conftest import signup
from tests.plugins.e2e import (
    PROVISIONERS,
    Hub,
    Processes,
    Store,
    sandboxes,
    worker_env,
    workers_and_beat,
)
from tests.workers.conftest import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")


@pytest.fixture(scope="module")
def amazon() -> Iterator[SandboxServer]:
    with sandboxes(["amazon_sc"]) as started:
        yield started["amazon_sc"]


@pytest.fixture(scope="module")
def procs(hub_env: dict[str, str], settings: Settings) -> Iterator[Processes]:
    # Attempts to spare: the outage test keeps the Orders API down through several of them.
    env = worker_env(
        hub_env,
        FUSION_ORDER_QUEUE_POLL_S="1",
        FUSION_ORDER_QUEUE_LISTEN_S="2",
        FUSION_MAX_ATTEMPTS="30",
    )
    with workers_and_beat(env, "amazon_sc,default", concurrency=2) as processes:
        yield processes


@pytest.fixture
def hub(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    procs: Processes,
    amazon: SandboxServer,
) -> Hub:
    amazon.app.knobs.reset()
    return Hub(settings, database, admin_engine, org_a)


def _selling(hub: Hub, amazon: SandboxServer) -> tuple[Store, str]:
    """An Amazon store with one SKU published, of which the hub holds 5: (store, SKU)."""
    store = hub.connect("amazon_sc", amazon)
    listing_id, sku = hub.product(store, quantity=5)
    assert hub.run("create_product", store, {"listing_id": str(listing_id)}).status == "completed"
    return store, sku


def _orders(admin: Engine, store: Store) -> list[Any]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT o.external_id, o.total, o.stock_applied_at, l.sku, l.quantity, "
                    "l.unit_price FROM orders o JOIN order_lines l ON l.order_id = o.id "
                    "WHERE o.store_id = :s"
                ),
                {"s": store.id},
            ).all()
        )


def _held(admin: Engine, sku: str) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                text("SELECT available_quantity FROM product_variants WHERE sku = :sku"),
                {"sku": sku},
            ).scalar_one()
        )


def _consumed(admin: Engine, store: Store) -> list[dict[str, Any]]:
    """The results of the store's completed consume_order_queue jobs (all beat's doing)."""
    with admin.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT result FROM jobs WHERE store_id = :s AND job_type = :t "
                    "AND status = 'completed' ORDER BY finished_at"
                ),
                {"s": store.id, "t": CONSUME_ORDER_QUEUE},
            ).scalars()
        ]


def _resend(store: Store, payload: dict[str, Any]) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=store.shop.settings["sqs_endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=store.shop.credentials["aws_access_key_id"],
        aws_secret_access_key=store.shop.credentials["aws_secret_access_key"],
    )
    sqs.send_message(QueueUrl=store.shop.settings["sqs_queue_url"], MessageBody=json.dumps(payload))


def test_an_amazon_order_arrives_by_its_queue_once_priced_and_takes_stock_once(
    hub: Hub, amazon: SandboxServer
) -> None:
    # Given an Amazon store selling a SKU the hub holds 5 of
    store, sku = _selling(hub, amazon)
    # When a buyer orders 2 on Amazon (which sends ORDER_CHANGE to the seller's SQS queue)
    placed = store.place_order(sku, 2)
    # Then, with no job asked for by anyone but beat, the order is stored with its stock
    # taken, and then priced from the Orders API
    wait_until(lambda: any(r.stock_applied_at for r in _orders(hub.admin, store)), 60)
    wait_until(lambda: all(r.unit_price for r in _orders(hub.admin, store)), 30)
    rows = _orders(hub.admin, store)
    assert [(r.external_id, r.sku, r.quantity, r.unit_price) for r in rows] == [
        (placed["AmazonOrderId"], sku, 2, Decimal("12.50"))
    ]
    assert rows[0].total == Decimal("25.00")
    assert _held(hub.admin, sku) == 3
    with hub.admin.connect() as conn:
        delivery = conn.execute(
            text("SELECT delivery_id, topic, status, payload FROM webhooks WHERE store_id = :s"),
            {"s": store.id},
        ).one()
    assert (delivery.delivery_id, delivery.topic) == (placed["notification_id"], "ORDER_CHANGE")
    wait_until(lambda: _delivery_status(hub.admin, store) == "processed", 30)

    # When Amazon delivers the same notification again
    again = {k: v for k, v in delivery.payload.items() if k not in ("order", "items")}
    _resend(store, again)
    # Then a later poll reads it, finds it stored, and nothing changes
    wait_until(lambda: any(r["duplicates"] for r in _consumed(hub.admin, store)), 60)
    assert len(_orders(hub.admin, store)) == 1
    assert _held(hub.admin, sku) == 3
    with hub.admin.connect() as conn:
        webhooks = conn.execute(
            text("SELECT count(*) FROM webhooks WHERE store_id = :s"), {"s": store.id}
        ).scalar_one()
    assert webhooks == 1
    assert sum(r["accepted"] for r in _consumed(hub.admin, store)) == 1

    # When a notification of another seller reaches this store's queue
    change = again["Payload"]["OrderChangeNotification"]
    foreign = {
        **again,
        "Payload": {
            "OrderChangeNotification": {**change, "SellerId": "AOTHERSELLER", "AmazonOrderId": "1"}
        },
        "NotificationMetadata": {**again["NotificationMetadata"], "NotificationId": "n-foreign"},
    }
    _resend(store, foreign)
    # Then the poll drops it as refused: nothing stored, no order, the stock unchanged
    wait_until(lambda: any(r.get("refused") for r in _consumed(hub.admin, store)), 60)
    with hub.admin.connect() as conn:
        webhooks = conn.execute(
            text("SELECT count(*) FROM webhooks WHERE store_id = :s"), {"s": store.id}
        ).scalar_one()
    assert webhooks == 1
    assert len(_orders(hub.admin, store)) == 1
    assert _held(hub.admin, sku) == 3


def test_an_amazon_order_takes_its_stock_while_the_orders_api_is_down_and_is_priced_later(
    hub: Hub, amazon: SandboxServer
) -> None:
    # Given an Amazon store selling a SKU the hub holds 5 of, whose API then goes down
    store, sku = _selling(hub, amazon)
    amazon.app.knobs.update({"outage": True})
    try:
        # When a buyer orders 2 (the notification still reaches the store's queue)
        placed = store.place_order(sku, 2)
        # Then the stock is taken from the notification's lines, with no Amazon call
        wait_until(lambda: _held(hub.admin, sku) == 3, 60)
        [row] = _orders(hub.admin, store)
        assert (row.external_id, row.sku, row.quantity) == (placed["AmazonOrderId"], sku, 2)
        assert (row.unit_price, row.total) == (Decimal("0"), Decimal("0"))
        assert _delivery_status(hub.admin, store) == "processed"
        assert _job_status(hub.admin, store, "price_order") in ("pending", "running")
    finally:
        amazon.app.knobs.update({"outage": False})
    # And when the API is back the prices follow; the stock is not taken again
    wait_until(lambda: _job_status(hub.admin, store, "price_order") == "completed", 60)
    [row] = _orders(hub.admin, store)
    assert (row.unit_price, row.total) == (Decimal("12.50"), Decimal("25.00"))
    assert _held(hub.admin, sku) == 3


def _job_status(admin: Engine, store: Store, job_type: str) -> str | None:
    with admin.connect() as conn:
        return conn.execute(
            text("SELECT status::text FROM jobs WHERE store_id = :s AND job_type = :t"),
            {"s": store.id, "t": job_type},
        ).scalar_one_or_none()


def test_an_amazon_store_connected_through_the_api_alone_receives_its_orders(
    client: FlaskClient,
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    procs: Processes,
    amazon: SandboxServer,
) -> None:
    # Given a merchant who signs up, makes an org and connects their Amazon seller account
    # through the API, naming the SQS queue Amazon notifies in the store's settings
    amazon.app.knobs.reset()
    owner = signup(client)
    org_id = uuid.UUID(owner.post("/orgs", json={"name": "Sells on Amazon"}).json["id"])
    shop = PROVISIONERS["amazon_sc"](amazon.url, "tok" + uuid.uuid4().hex)
    response = owner.post(
        f"/orgs/{org_id}/stores",
        json={
            "platform": "amazon_sc",
            "name": "Amazon",
            "external_id": shop.external_id,
            "base_url": amazon.url,
            "credentials": dict(shop.credentials),
            "settings": dict(shop.settings),
            "catalog_rules": dict(shop.catalog_rules),
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["settings"]["sqs_queue_url"] == shop.settings["sqs_queue_url"]
    store = Store(uuid.UUID(response.json["id"]), "amazon_sc", shop, amazon)
    hub = Hub(settings, database, admin_engine, org_id)
    listing_id, sku = hub.product(store, quantity=5)
    assert hub.run("create_product", store, {"listing_id": str(listing_id)}).status == "completed"
    # When a buyer orders 2 on Amazon
    placed = store.place_order(sku, 2)
    # Then beat's poll of the queue brings the order in, priced, and takes its stock once
    wait_until(lambda: any(r.stock_applied_at for r in _orders(admin_engine, store)), 60)
    assert [(r.external_id, r.sku, r.quantity) for r in _orders(admin_engine, store)] == [
        (placed["AmazonOrderId"], sku, 2)
    ]
    assert _held(admin_engine, sku) == 3
    # And the orders API shows it
    listed = owner.get(f"/orgs/{org_id}/orders", query_string={"store_id": str(store.id)})
    assert [(o["external_id"], o["history"]) for o in listed.json["items"]] == [
        (placed["AmazonOrderId"], False)
    ]


def test_beat_and_workers_log_the_order_polls_but_not_the_sweeps_chatter(
    hub: Hub, procs: Processes
) -> None:
    # The sweeps run several times a second; beat's other tasks show. Wait for beat to have
    # sent an order poll (not merely for the workers' banner, which names the task at start):
    # in whatever order the module's tests run, beat has then run its sweeps too.
    def polled() -> bool:
        output = procs.output()
        return "Sending due task fusion.orders" in output or "(fusion.orders.consume" in output

    wait_until(polled, 30)
    output = procs.output()
    assert "Sending due task fusion.orders" in output or "(fusion.orders.consume" in output
    for chatter in ("Task fusion.sweep.reap[", "Task fusion.sweep.dispatch_due[", "(fusion.sweep."):
        assert chatter not in output


def _delivery_status(admin: Engine, store: Store) -> str:
    with admin.connect() as conn:
        return str(
            conn.execute(
                text("SELECT status FROM webhooks WHERE store_id = :s"), {"s": store.id}
            ).scalar_one()
        )


def _listeners(admin: Engine, store: Store) -> list[Any]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, status, created_at, started_at, finished_at, result FROM jobs "
                    "WHERE store_id = :s AND job_type = :t ORDER BY created_at"
                ),
                {"s": store.id, "t": CONSUME_ORDER_QUEUE},
            ).all()
        )


def _stopped_listening_at(admin: Engine, job_id: uuid.UUID) -> Any:
    """When the listener wrote its summary: after its last read of the queue."""
    with admin.connect() as conn:
        return conn.execute(
            text(
                "SELECT created_at FROM job_logs WHERE job_id = :id "
                "AND message LIKE 'order queue: %'"
            ),
            {"id": job_id},
        ).scalar_one()


def test_each_listener_hands_over_to_one_successor_and_never_two_listen_at_once(
    hub: Hub, amazon: SandboxServer
) -> None:
    # Given an Amazon store whose queue is read by listeners of 2 s each (beat started the
    # first; here it checks every second)
    store = hub.connect("amazon_sc", amazon)
    # When a few of them have run
    wait_until(lambda: sum(j.status == "completed" for j in _listeners(hub.admin, store)) >= 3, 60)
    # Then they form one chain: each completed listener names one successor of its own,
    # enqueued before it finished (no gap, so beat never had to start another), which began
    # only after it had stopped reading the queue
    listeners = _listeners(hub.admin, store)
    by_id = {j.id: j for j in listeners}
    done = [j for j in listeners if j.status == "completed"]
    successors = [uuid.UUID(j.result["successor"]) for j in done]
    assert len(set(successors)) == len(successors)
    assert [j.id for j in listeners[1:]] == successors[: len(listeners) - 1]
    for job, successor_id in zip(done, successors, strict=True):
        successor = by_id[successor_id]
        assert successor.created_at <= job.finished_at
        if successor.started_at is not None:
            assert successor.started_at >= _stopped_listening_at(hub.admin, job.id)
