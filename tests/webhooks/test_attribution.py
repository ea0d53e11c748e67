"""A delivery is attributed by the shop it names, not by its URL alone: correctly signed with
the store's secret but naming another shop (or none), it gets the same 401 as a bad signature
and nothing is stored; the same signed body under a new delivery id is a duplicate. Through
the real receiver over Postgres, signed as each platform signs."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from fusion.config import Settings
from fusion.db.session import Database
from fusion.security.signing import standard_webhooks_sign
from tests.webhooks.conftest import (
    ETSY_SECRET,
    SHOPIFY_SECRET,
    add_store,
    count,
    external_id,
    shopify_delivery,
    shopify_order,
)

PRINTIFY_SECRET = "printify-test-webhook-secret"


def _post(
    client: FlaskClient, platform: str, store_id: uuid.UUID, body: bytes, headers: dict[str, str]
) -> TestResponse:
    return client.post(f"/webhooks/{platform}/{store_id}", data=body, headers=headers)


def _refusal(client: FlaskClient, platform: str, store_id: uuid.UUID) -> tuple[int, bytes]:
    """What a delivery with a bad signature gets: the answer every refusal must match."""
    response = _post(client, platform, store_id, b"{}", {"Content-Type": "application/json"})
    return response.status_code, response.data


def _nothing_stored(admin_engine: Engine) -> None:
    for table in ("webhooks", "jobs", "orders"):
        assert count(admin_engine, table) == 0, table


def test_a_signed_shopify_delivery_from_another_shop_is_refused_like_a_bad_signature(
    client: FlaskClient,
    admin_engine: Engine,
    database: Database,
    settings: Settings,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    # Given two merchants' Shopify stores whose deliveries share one app secret
    victim = add_store(database, settings, org_a, "shopify", SHOPIFY_SECRET)
    attacker = add_store(database, settings, org_b, "shopify", SHOPIFY_SECRET)
    refused = _refusal(client, "shopify", victim)
    assert refused[0] == 401
    # When Shopify delivers the attacker's shop's order to the victim store's address
    order = shopify_order(9001, [("SKU-RED", 5)])
    body, headers = shopify_delivery(order, shop=external_id(admin_engine, attacker))
    wrong_shop = _post(client, "shopify", victim, body, headers)
    # or the same delivery with the shop header left out
    no_shop = {k: v for k, v in headers.items() if k != "X-Shopify-Shop-Domain"}
    missing = _post(client, "shopify", victim, body, no_shop)
    # Then both get exactly the bad signature's 401, and nothing is stored or enqueued
    assert (wrong_shop.status_code, wrong_shop.data) == refused
    assert (missing.status_code, missing.data) == refused
    _nothing_stored(admin_engine)
    # While the victim's own shop, by that name in any case, is accepted
    victim_shop = external_id(admin_engine, victim).upper()
    body, headers = shopify_delivery(order, shop=victim_shop)
    assert _post(client, "shopify", victim, body, headers).json == {"status": "accepted"}


def _printify(shop_id: object, secret: str = PRINTIFY_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "order:created",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "resource": {
                "id": uuid.uuid4().hex[:24],
                "type": "order",
                "data": {"shop_id": shop_id, "status": "on-hold"},
            },
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Pfy-Signature": f"sha256={signature}"}


def test_a_signed_printify_event_for_another_shop_is_refused_like_a_bad_signature(
    client: FlaskClient,
    admin_engine: Engine,
    database: Database,
    settings: Settings,
    org_a: uuid.UUID,
) -> None:
    store = add_store(database, settings, org_a, "printify", PRINTIFY_SECRET, external_id="815256")
    refused = _refusal(client, "printify", store)
    # When an event signed with the store's secret names shop 999001, or no shop at all
    for shop_id in (999001, "999001", None):
        body, headers = _printify(shop_id)
        response = _post(client, "printify", store, body, headers)
        # Then it is the bad signature's 401, and nothing is stored
        assert (response.status_code, response.data) == refused, shop_id
    _nothing_stored(admin_engine)
    # While the store's own shop's event is accepted
    body, headers = _printify(815256)
    assert _post(client, "printify", store, body, headers).json == {"status": "accepted"}


def _etsy(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    msg_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    return body, {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_sign(ETSY_SECRET, msg_id, timestamp, body),
    }


def _receipt(receipt_id: int) -> dict[str, Any]:
    now = int(time.time())
    money = {"amount": 1000, "divisor": 100, "currency_code": "USD"}
    return {
        "receipt_id": receipt_id,
        "status": "paid",
        "create_timestamp": now,
        "update_timestamp": now,
        "grandtotal": money,
        "transactions": [
            {"transaction_id": 1, "sku": "SKU-RED", "quantity": 3, "price": money},
        ],
    }


def test_a_signed_etsy_event_for_another_shop_is_refused_like_a_bad_signature(
    client: FlaskClient,
    admin_engine: Engine,
    database: Database,
    settings: Settings,
    org_a: uuid.UUID,
) -> None:
    store = add_store(database, settings, org_a, "etsy", ETSY_SECRET, external_id="1001")
    refused = _refusal(client, "etsy", store)
    cases = {
        "another shop": {"event_type": "order.paid", "shop_id": 2002, "receipt": _receipt(1)},
        "no shop": {"event_type": "order.paid", "receipt": _receipt(2)},
        "a receipt of another shop": {
            "event_type": "order.paid",
            "shop_id": 1001,
            "receipt": {**_receipt(3), "shop_id": 2002},
        },
    }
    for name, payload in cases.items():
        body, headers = _etsy(payload)
        response = _post(client, "etsy", store, body, headers)
        assert (response.status_code, response.data) == refused, name
    _nothing_stored(admin_engine)
    body, headers = _etsy({"event_type": "order.paid", "shop_id": 1001, "receipt": _receipt(4)})
    assert _post(client, "etsy", store, body, headers).json == {"status": "accepted"}


def test_the_same_signed_body_under_a_new_delivery_id_is_a_duplicate(
    client: FlaskClient, admin_engine: Engine, shop_a: uuid.UUID
) -> None:
    # Given a delivery the hub accepted
    shop = external_id(admin_engine, shop_a)
    body, headers = shopify_delivery(shopify_order(9002), shop=shop)
    assert _post(client, "shopify", shop_a, body, headers).json == {"status": "accepted"}
    # When the same signed bytes come again with new (unsigned) webhook id and time headers
    for _ in range(3):
        resent = {
            **headers,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        }
        response = _post(client, "shopify", shop_a, body, resent)
        # Then each is a duplicate: 200, and no second row or job
        assert (response.status_code, response.json) == (200, {"status": "duplicate"})
    assert count(admin_engine, "webhooks") == 1
    assert count(admin_engine, "jobs") == 1
    # While a different body (the order's next state) is a delivery of its own
    body2, headers2 = shopify_delivery({**shopify_order(9002), "note": "gift"}, shop=shop)
    assert _post(client, "shopify", shop_a, body2, headers2).json == {"status": "accepted"}
    assert count(admin_engine, "jobs") == 2
