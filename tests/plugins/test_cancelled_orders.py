"""Each plugin says when the platform reports an order cancelled (its stock then goes back:
``tests/webhooks/test_cancellations.py``), in each platform's own words."""

from __future__ import annotations

from typing import Any

import pytest

from fusion.plugins import amazon, etsy, printify, shopify
from fusion.plugins.base import RemoteOrder, WebhookEvent


def _etsy(status: str) -> RemoteOrder:
    return etsy.order_from_receipt(
        {
            "receipt_id": 7,
            "status": status,
            "create_timestamp": 1_764_000_000,
            "grandtotal": {"amount": 1000, "divisor": 100, "currency_code": "USD"},
            "transactions": [
                {
                    "transaction_id": 1,
                    "sku": "A",
                    "quantity": 1,
                    "price": {"amount": 1000, "divisor": 100, "currency_code": "USD"},
                }
            ],
        }
    )


def _amazon(status: str) -> RemoteOrder:
    order = {"AmazonOrderId": "111-1", "OrderStatus": status, "PurchaseDate": None}
    return amazon.order_from_api(order, [])


def _amazon_notification(status: str) -> RemoteOrder:
    payload = {
        "Payload": {
            "OrderChangeNotification": {
                "AmazonOrderId": "111-1",
                "Summary": {"OrderStatus": status, "OrderItems": []},
            }
        }
    }
    order = amazon.plugin.order_from_event(WebhookEvent("n1", "ORDER_CHANGE", payload))
    assert order is not None
    return order


def _printify(status: str) -> RemoteOrder:
    return printify.order_from_api({"id": "o1", "status": status, "line_items": []})


def _shopify_rest(cancelled_at: Any) -> RemoteOrder:
    body = {
        "id": 1,
        "admin_graphql_api_id": "gid://shopify/Order/1",
        "total_price": "1.00",
        "financial_status": "voided",
        "cancelled_at": cancelled_at,
        "line_items": [],
    }
    order = shopify.plugin.order_from_event(WebhookEvent("d1", "orders/updated", body))
    assert order is not None
    return order


@pytest.mark.parametrize(
    ("make", "cancelled", "live"),
    [
        (_etsy, "Canceled", "Paid"),
        (_amazon, "Canceled", "Shipped"),
        (_amazon_notification, "Canceled", "Unshipped"),
        (_printify, "canceled", "fulfilled"),
        (_shopify_rest, "2026-11-28T11:00:00Z", None),
    ],
)
def test_cancelled_orders_are_flagged_and_live_ones_are_not(
    make: Any, cancelled: Any, live: Any
) -> None:
    assert make(cancelled).cancelled is True
    assert make(live).cancelled is False
