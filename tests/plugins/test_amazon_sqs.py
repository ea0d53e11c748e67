"""ORDER_CHANGE notifications through the sandbox's SQS queue (moto's server over loopback):
consumed once per NotificationId, deleted only after the handler succeeded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
import requests

from fusion.errors import UnsupportedCapability
from fusion.plugins import amazon
from fusion.plugins.amazon_sqs import OrderChangeConsumer
from fusion.plugins.base import StoreConnection, WebhookEvent
from fusion.plugins.registry import get_plugin
from fusion.sandbox import _amazon_contract as contract
from fusion.sandbox.amazon import AmazonSandbox
from tests.plugins.test_amazon import client_for, draft, fresh_seller, running_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[AmazonSandbox, str]]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def seller(sandbox: tuple[AmazonSandbox, str]) -> StoreConnection:
    return fresh_seller(sandbox)


def place(url: str, conn: StoreConnection, sku: str = "MUG-1", quantity: int = 1) -> dict[str, Any]:
    answer = requests.post(
        f"{url}/_sandbox/orders",
        json={
            "shop": conn.external_id,
            "lines": [{"sku": sku, "quantity": quantity, "price": "9.00"}],
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def consumer(conn: StoreConnection, handle: Any, **options: Any) -> OrderChangeConsumer:
    return OrderChangeConsumer.for_store(conn, handle, wait_s=0, **options)


def raw_queue(conn: StoreConnection) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=conn.settings["sqs_endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def test_an_order_reaches_the_handler_once_and_leaves_the_queue(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client_for(seller).create_product(draft("MUG-1", quantity=5))
    placed = place(url, seller, quantity=2)
    events: list[WebhookEvent] = []
    result = consumer(seller, events.append).drain()
    assert (result.received, result.handled, result.duplicates) == (1, 1, 0)
    (event,) = events
    assert event.topic == "ORDER_CHANGE" and event.delivery_id == placed["notification_id"]
    order = amazon.plugin.order_from_event(event)
    assert order is not None and order.external_id == placed["AmazonOrderId"]
    assert [(li.sku, li.quantity) for li in order.lines] == [("MUG-1", 2)]
    assert order.lines[0].unit_price == Decimal(0)  # notifications carry no prices
    assert amazon.plugin.needs_lookup(event)
    full = amazon.plugin.order_from_event(client_for(seller).complete_event(event))
    assert full is not None  # the Orders API fills the prices in
    assert full.lines[0].unit_price == Decimal("9.00") and full.total == Decimal("18.00")
    assert consumer(seller, events.append).poll().received == 0


def test_the_plugins_order_queue_hands_on_notifications_that_complete_with_prices(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client_for(seller).create_product(draft("MUG-1", quantity=5))
    placed = place(url, seller, quantity=2)
    # and a notification about an order Amazon will not show (another seller's, say)
    sqs = raw_queue(seller)
    first = sqs.receive_message(QueueUrl=seller.settings["sqs_queue_url"], VisibilityTimeout=0)
    foreign = json.loads(first["Messages"][0]["Body"])
    foreign["NotificationMetadata"]["NotificationId"] = "n-foreign"
    foreign["Payload"]["OrderChangeNotification"]["AmazonOrderId"] = "111-0000000-0000000"
    sqs.send_message(QueueUrl=seller.settings["sqs_queue_url"], MessageBody=json.dumps(foreign))
    log: list[str] = []
    client = client_for(seller, log)
    events: list[WebhookEvent] = []
    result = amazon.plugin.order_queue(client, events.append).drain()
    assert (result.received, result.handled, result.failed) == (2, 2, 0)
    assert all(amazon.plugin.needs_lookup(e) for e in events)  # as Amazon sent them
    orders = {
        e.delivery_id: amazon.plugin.order_from_event(client.complete_event(e)) for e in events
    }
    known, unknown = orders[placed["notification_id"]], orders["n-foreign"]
    assert known is not None and unknown is not None
    assert [(li.sku, li.quantity, li.unit_price) for li in known.lines] == [
        ("MUG-1", 2, Decimal("9.00"))
    ]
    # kept from the notification alone: the stock still counts, the price is unknown
    assert [(li.sku, li.quantity, li.unit_price) for li in unknown.lines] == [
        ("MUG-1", 2, Decimal(0))
    ]
    assert any("111-0000000-0000000" in m and "without prices" in m for m in log)


def test_a_platform_without_an_order_queue_refuses_one(seller: StoreConnection) -> None:
    with pytest.raises(UnsupportedCapability, match="order_queue"):
        get_plugin("shopify").order_queue(client_for(seller), lambda event: None)


def test_a_duplicated_notification_is_handled_once(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    place(url, seller)
    events: list[WebhookEvent] = []
    reader = consumer(seller, events.append)
    first = reader.drain()
    assert first.handled == 1
    # Amazon may deliver the same notification again: same NotificationId, new message.
    sqs = raw_queue(seller)
    sqs.send_message(
        QueueUrl=seller.settings["sqs_queue_url"], MessageBody=json.dumps(events[0].payload)
    )
    sqs.send_message(QueueUrl=seller.settings["sqs_queue_url"], MessageBody="not json")
    again = reader.drain()
    assert (again.received, again.handled, again.duplicates, again.invalid) == (2, 0, 1, 1)
    assert len(events) == 1
    assert consumer(seller, events.append).poll().received == 0  # both were deleted


def test_a_failing_handler_leaves_the_message_for_redelivery(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    placed = place(url, seller)

    def broken(event: WebhookEvent) -> None:
        raise RuntimeError("database down")

    failed = consumer(seller, broken, visibility_timeout_s=0).poll()
    assert (failed.received, failed.failed, failed.handled) == (1, 1, 0)
    events: list[WebhookEvent] = []
    later = consumer(seller, events.append).drain()
    assert later.handled == 1 and events[0].delivery_id == placed["notification_id"]


@pytest.mark.skipif(
    not contract.available(), reason=f"contracts not found at {contract.contracts_dir()}"
)
def test_the_notification_conforms_to_the_order_change_schema(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    place(url, seller)
    events: list[WebhookEvent] = []
    consumer(seller, events.append).drain()
    assert contract.schema_errors(contract.ORDER_CHANGE, dict(events[0].payload)) == []
