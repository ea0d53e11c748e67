"""Etsy plugin against the Etsy sandbox over loopback, through the real HTTP helper.

Given a shop in the sandbox, when the client calls a capability, then the sandbox's state shows
exactly the platform-side effect (and nothing on failure paths)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
import requests

from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.plugins import _etsy_inventory
from fusion.plugins.base import Capability, InventoryUpdate, ProductDraft, VariantDraft
from fusion.plugins.etsy import EtsyClient, key_tag, plugin
from fusion.plugins.models import ContractLevel
from fusion.sandbox._etsy_contract import API, request_schema
from fusion.sandbox.etsy import EtsySandbox
from fusion.sandbox.server import SandboxServer
from fusion.security.signing import standard_webhooks_sign
from fusion.stores.memo import RedisMemo
from tests.sandbox.harness import connection, store_http, webhook_receiver

_shop_ids = count(7001)
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(EtsySandbox()) as running:
        yield running


@pytest.fixture
def shop(server: SandboxServer) -> Iterator[dict[str, Any]]:
    server.app.reset()
    details = {
        "shop_id": next(_shop_ids),
        "user_id": 4242,
        "keystring": uuid.uuid4().hex[:24],
        "shared_secret": uuid.uuid4().hex[:10],
        "access_token": uuid.uuid4().hex,
        "webhook_secret": "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode(),
    }
    requests.post(f"{server.url}/_sandbox/shops", json=details, timeout=5).raise_for_status()
    # Tests without a shared bucket would trip Etsy's 10/s; the limit has its own test.
    knobs(server, rate_limit=[1000, 100000])
    yield details
    server.app.reset()


def make_client(
    server: SandboxServer, shop: dict[str, Any], *, token: str | None = None, **kw: Any
) -> tuple[EtsyClient, list[str]]:
    conn = connection(
        "etsy",
        server.url,
        external_id=str(shop["shop_id"]),
        credentials={
            "keystring": shop["keystring"],
            "shared_secret": shop["shared_secret"],
            "access_token": token or f"{shop['user_id']}.{shop['access_token']}",
        },
    )
    logs: list[str] = []
    return plugin.client(conn, store_http(conn, **kw), logs.append), logs


def state(server: SandboxServer, shop: dict[str, Any]) -> dict[str, Any]:
    body = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()
    return body["state"][str(shop["shop_id"])]  # type: ignore[no-any-return]


def knobs(server: SandboxServer, **values: Any) -> None:
    requests.post(f"{server.url}/_sandbox/knobs", json=values, timeout=5).raise_for_status()


DRAFT = ProductDraft(
    title="Linen tote",
    description="Sturdy.",
    variants=[
        VariantDraft(sku="TOTE-NAT", price=Decimal("24.00"), quantity=5),
        VariantDraft(sku="TOTE-BLK", price=Decimal("26.00"), quantity=2),
    ],
    idempotency_key="listing-77aa",
    category="1",  # the store's mapping of the product's category: Etsy requires a taxonomy_id
)


def test_capability_levels_are_the_matrix():
    assert plugin.level(Capability.BULK_OPERATIONS) is ContractLevel.WORKAROUND
    assert plugin.level(Capability.REAL_TIME_INVENTORY) is ContractLevel.UNSUPPORTED
    assert plugin.level(Capability.CREATE_PRODUCT) is ContractLevel.NATIVE


def test_create_then_list_shows_the_listing_with_its_stock(server, shop):
    client, _ = make_client(server, shop)

    created = client.create_product(DRAFT)

    assert created.quantities == {"TOTE-NAT": 5, "TOTE-BLK": 2}
    [listing] = state(server, shop)["listings"]
    assert listing["state"] == "draft"
    assert listing["tags"] == [key_tag("listing-77aa")]
    listed = client.list_products()
    assert [(p.external_id, p.title, dict(p.quantities)) for p in listed] == [
        (created.external_id, "Linen tote", {"TOTE-NAT": 5, "TOTE-BLK": 2})
    ]
    inventory = state(server, shop)["inventories"][created.external_id]
    assert inventory["sku_on_property"] == [513]
    prices = {p["sku"]: p["offerings"][0]["price"]["amount"] for p in inventory["products"]}
    assert prices == {"TOTE-NAT": 2400, "TOTE-BLK": 2600}


def test_a_create_retried_after_a_timeout_makes_one_listing(server, shop):
    slow, _ = make_client(server, shop, read_timeout_s=0.3)
    client, logs = make_client(server, shop)
    # The platform creates the listing but its answer comes too late for the client.
    knobs(server, late_answer_ms=600, late_answer_method="POST")

    with pytest.raises(RetryableError, match="timed out"):
        slow.create_product(DRAFT)

    knobs(server, late_answer_ms=0)
    assert len(state(server, shop)["listings"]) == 1
    again = client.create_product(DRAFT)

    listings = state(server, shop)["listings"]
    assert [str(lst["listing_id"]) for lst in listings] == [again.external_id]
    assert again.quantities == {"TOTE-NAT": 5, "TOTE-BLK": 2}
    assert logs == [
        f"etsy listing {again.external_id} from an earlier attempt found by tag; reusing it"
    ]


def test_update_changes_title_and_inventory(server, shop):
    client, _ = make_client(server, shop)
    created = client.create_product(DRAFT)
    changed = ProductDraft(
        title="Linen tote XL",
        variants=[VariantDraft("TOTE-NAT", Decimal("30.00"), 9)],
        category="1",
    )

    updated = client.update_product(created.external_id, changed)

    assert updated.quantities == {"TOTE-NAT": 9}
    [listing] = state(server, shop)["listings"]
    assert listing["title"] == "Linen tote XL"
    inventory = state(server, shop)["inventories"][created.external_id]
    assert [p["offerings"][0]["price"]["amount"] for p in inventory["products"]] == [3000]


def test_delete_removes_the_listing_and_a_repeat_is_harmless(server, shop):
    client, logs = make_client(server, shop)
    created = client.create_product(DRAFT)

    client.delete_product(created.external_id)
    client.delete_product(created.external_id)

    assert state(server, shop)["listings"] == []
    assert logs == [f"etsy listing {created.external_id} was already deleted"]


def test_set_inventory_keeps_prices_and_other_skus(server, shop):
    client, logs = make_client(server, shop)
    created = client.create_product(DRAFT)

    client.set_inventory([InventoryUpdate("TOTE-BLK", 12), InventoryUpdate("GHOST", 3)])

    [listed] = client.list_products()
    assert listed.quantities == {"TOTE-NAT": 5, "TOTE-BLK": 12}
    inventory = state(server, shop)["inventories"][created.external_id]
    assert {p["sku"]: p["offerings"][0]["price"]["amount"] for p in inventory["products"]} == {
        "TOTE-NAT": 2400,
        "TOTE-BLK": 2600,
    }
    assert logs == ["etsy has no listing with SKU GHOST; skipped it"]


@pytest.fixture
def memo(redis_client: Any, server: SandboxServer) -> RedisMemo:
    """The store's memo on the run's real Redis, as every job's client has it."""
    return RedisMemo(redis_client, store_id=str(uuid.uuid4()), address=server.url)


def _remembering_client(
    server: SandboxServer, shop: dict[str, Any], memo: RedisMemo
) -> tuple[EtsyClient, list[str]]:
    client, logs = make_client(server, shop)
    client.conn = dataclasses.replace(client.conn, memo=memo)
    return client, logs


def _calls(server: SandboxServer, shop: dict[str, Any]) -> Counter[str]:
    return Counter(state(server, shop)["calls"])


def _shown(server: SandboxServer, shop: dict[str, Any], listing_id: str) -> dict[str, Any]:
    """SKU -> (quantity, price in cents) as Etsy holds the listing's inventory."""
    inventory = state(server, shop)["inventories"][listing_id]
    return {
        p["sku"]: (p["offerings"][0]["quantity"], p["offerings"][0]["price"]["amount"])
        for p in inventory["products"]
    }


def test_a_burst_of_stock_changes_writes_each_listing_with_one_call(server, shop, memo):
    # Given a listing the hub created (and so read back, with its inventory)
    client, _ = _remembering_client(server, shop, memo)
    created = client.create_product(DRAFT)
    before = _calls(server, shop)
    # When its stock changes three times in a row, each by a new job's client
    for quantity in (4, 3, 2):
        client, _ = _remembering_client(server, shop, memo)
        client.set_inventory([InventoryUpdate("TOTE-NAT", quantity, created.external_id)])
    # Then each change was one write, no read, and Etsy holds the last figure, prices untouched
    assert _calls(server, shop) - before == Counter({"updateListingInventory": 3})
    assert _shown(server, shop, created.external_id) == {
        "TOTE-NAT": (2, 2400),
        "TOTE-BLK": (2, 2600),
    }


def test_a_listing_is_read_again_once_its_read_is_past_the_lifetime(
    server, shop, memo, monkeypatch
):
    monkeypatch.setattr(_etsy_inventory, "READ_LIFETIME_S", 1.0)
    client, _ = _remembering_client(server, shop, memo)
    created = client.create_product(DRAFT)  # read at t=0
    listing = created.external_id
    time.sleep(0.6)
    # A write within the lifetime uses the read and does not extend it
    before = _calls(server, shop)
    client.set_inventory([InventoryUpdate("TOTE-NAT", 4, listing)])
    assert _calls(server, shop) - before == Counter({"updateListingInventory": 1})
    # and the merchant changes a price on Etsy itself
    merchant, _ = make_client(server, shop)
    merchant._send_inventory(
        listing,
        [
            {**p, "offerings": [{**p["offerings"][0], "price": 31.0}]}
            if p["sku"] == "TOTE-BLK"
            else p
            for p in _etsy_inventory.writable_products(
                state(server, shop)["inventories"][listing]["products"]
            )
        ],
    )
    time.sleep(0.6)  # 1.2 s after the read, 0.6 s after the write
    # When the stock changes again
    before = _calls(server, shop)
    client.set_inventory([InventoryUpdate("TOTE-NAT", 3, listing)])
    # Then the listing was read again, and the merchant's price stays
    assert _calls(server, shop) - before == Counter(
        {"getListingInventory": 1, "updateListingInventory": 1}
    )
    assert _shown(server, shop, listing) == {"TOTE-NAT": (3, 2400), "TOTE-BLK": (2, 3100)}


def test_a_remembered_inventory_etsy_refuses_or_lacking_the_sku_is_read_again(server, shop, memo):
    client, logs = _remembering_client(server, shop, memo)
    created = client.create_product(DRAFT)
    listing = created.external_id
    inventories = _etsy_inventory.InventoryMemo(client.conn.memo)
    # Given a remembered inventory Etsy would refuse (a negative price)
    [products, _] = inventories.recall(listing)
    inventories.remember({listing: [{**p, "offerings": [{**p["offerings"][0], "price": -1.0}]}
                                    for p in products]})  # fmt: skip
    before = _calls(server, shop)
    client.set_inventory([InventoryUpdate("TOTE-NAT", 7, listing)])
    # Then the refused write was followed by a read and a good write
    assert _calls(server, shop) - before == Counter(
        {"getListingInventory": 1, "updateListingInventory": 2}
    )
    assert _shown(server, shop, listing) == {"TOTE-NAT": (7, 2400), "TOTE-BLK": (2, 2600)}
    assert any("reading it again" in line for line in logs)
    # And given a remembered inventory without a SKU the listing now holds
    inventories.remember({listing: [p for p in products if p["sku"] != "TOTE-BLK"]})
    before = _calls(server, shop)
    client.set_inventory([InventoryUpdate("TOTE-BLK", 9, listing)])
    assert _calls(server, shop) - before == Counter(
        {"getListingInventory": 1, "updateListingInventory": 1}
    )
    assert _shown(server, shop, listing) == {"TOTE-NAT": (7, 2400), "TOTE-BLK": (9, 2600)}


def test_bulk_inventory_is_paced_single_calls_and_says_so(server, shop):
    client, logs = make_client(server, shop)
    first = client.create_product(DRAFT)
    second = client.create_product(
        ProductDraft(
            "Mug", [VariantDraft("MUG-1", Decimal(9), 1)], idempotency_key="k2", category="1"
        )
    )

    client.bulk_set_inventory(
        [
            InventoryUpdate("TOTE-NAT", 0, external_id=first.external_id),
            InventoryUpdate("MUG-1", 50, external_id=second.external_id),
        ]
    )

    quantities = {p.external_id: dict(p.quantities) for p in client.list_products()}
    assert quantities == {
        first.external_id: {"TOTE-NAT": 0, "TOTE-BLK": 2},
        second.external_id: {"MUG-1": 50},
    }
    assert logs == [
        "etsy has no bulk inventory endpoint: updating 2 listings with one inventory call "
        "each, paced by the store's rate limit"
    ]


def test_missing_or_wrong_credentials_are_permanent(server, shop):
    client, _ = make_client(server, shop, token=f"{shop['user_id']}.wrong")
    with pytest.raises(PermanentError, match="401"):
        client.list_products()
    other = dict(shop, shared_secret="nope")
    client, _ = make_client(server, other)
    with pytest.raises(PermanentError, match="401"):
        client.list_products()
    assert state(server, shop)["listings"] == []


def test_a_request_the_contract_rejects_is_a_permanent_400(server, shop):
    if request_schema(f"{API}/shops/{{shop_id}}/listings", "post", FORM) is None:
        pytest.skip("etsy/etsy-openapi-v3.json not found: request validation is off")
    client, _ = make_client(server, shop)
    client.conn.settings["when_made"] = "last_tuesday"  # type: ignore[index]

    with pytest.raises(PermanentError, match=r"answered 400 \(the platform refused") as refused:
        client.create_product(DRAFT)
    assert "when_made" not in str(refused.value)  # the platform's answer is not echoed
    assert state(server, shop)["listings"] == []


def test_outage_and_server_errors_are_retryable(server, shop):
    client, _ = make_client(server, shop)
    knobs(server, outage=True)
    with pytest.raises(RetryableError, match="503"):
        client.list_products()
    knobs(server, outage=False, error_rate=1.0)
    with pytest.raises(RetryableError, match="500"):
        client.fetch_orders(datetime.now(UTC))
    knobs(server, error_rate=0.0)


def test_rate_limit_headers_and_429_with_retry_after(server, shop):
    client, _ = make_client(server, shop)
    knobs(server, rate_limit=[3, 1000])
    headers = {
        "x-api-key": f"{shop['keystring']}:{shop['shared_secret']}",
        "Authorization": f"Bearer {shop['user_id']}.{shop['access_token']}",
    }
    url = f"{server.url}/v3/application/shops/{shop['shop_id']}/receipts"

    answers = [requests.get(url, headers=headers, timeout=5) for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[0].headers["x-limit-per-second"] == "3"
    assert answers[0].headers["x-limit-per-day"] == "1000"
    assert [a.headers["x-remaining-this-second"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[2].headers["x-remaining-today"] == "997"
    if answers[3].status_code == 429:  # the 4th may land in the next second on a slow machine
        assert answers[3].headers["retry-after"] == "1"
        assert "error" in answers[3].json()
    with pytest.raises(RateLimited):
        for _ in range(4):
            client.fetch_orders(datetime.now(UTC))


def test_fetch_orders_returns_receipts_modified_since(server, shop):
    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    before = datetime.now(UTC) - timedelta(seconds=5)
    receipt = requests.post(
        f"{server.url}/_sandbox/orders",
        json={"shop_id": shop["shop_id"], "lines": [{"sku": "TOTE-BLK", "quantity": 2}]},
        timeout=5,
    ).json()

    [order] = client.fetch_orders(before)
    later = client.fetch_orders(datetime.now(UTC) + timedelta(minutes=1))

    assert order.external_id == str(receipt["receipt_id"])
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        ("TOTE-BLK", 2, Decimal("26"))
    ]
    assert order.total == Decimal("52")
    assert later == []
    assert client.list_products()[0].quantities["TOTE-BLK"] == 0


def test_order_webhook_is_signed_and_parsed(server, shop):
    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    with webhook_receiver() as receiver:
        server.app.shops[shop["shop_id"]].webhook_url = receiver.url
        requests.post(
            f"{server.url}/_sandbox/orders",
            json={"shop_id": shop["shop_id"], "lines": [{"sku": "TOTE-NAT", "quantity": 1}]},
            timeout=5,
        ).raise_for_status()
        [delivery] = receiver.wait_for(1)

    event = plugin.verify_webhook(delivery.headers, delivery.body, shop["webhook_secret"])
    order = plugin.order_from_event(event)

    assert event.topic == "order.paid"
    assert event.delivery_id == delivery.headers["Webhook-Id"]
    assert order is not None
    assert [(line.sku, line.quantity) for line in order.lines] == [("TOTE-NAT", 1)]


def _signed(secret: str, body: bytes, *, at: int | None = None) -> dict[str, str]:
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(at if at is not None else int(time.time()))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": standard_webhooks_sign(secret, msg_id, stamp, body),
    }


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"event_type": "order.paid", "shop_id": 1}).encode()


def test_a_valid_webhook_without_a_receipt_yields_no_order():
    event = plugin.verify_webhook(_signed(SECRET, BODY), BODY, SECRET)
    assert event.topic == "order.paid"
    assert plugin.order_from_event(event) is None


OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 24).decode()


# Each case signs when the test runs, not when pytest collects the module: a delivery signed
# at collection time is "too old" by the time a long suite reaches it.
@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        pytest.param(lambda: (_signed(SECRET, BODY), BODY + b" "), "does not match", id="tampered"),
        pytest.param(lambda: (_signed(OTHER_SECRET, BODY), BODY), "does not match", id="forged"),
        pytest.param(
            lambda: (_signed(SECRET, BODY, at=int(time.time()) - 600), BODY), "too old", id="replay"
        ),
        pytest.param(
            lambda: (_signed(SECRET, BODY, at=int(time.time()) + 600), BODY), "too new", id="future"
        ),
        pytest.param(
            lambda: ({"webhook-id": "m", "webhook-timestamp": "1"}, BODY), "missing", id="unsigned"
        ),
    ],
)
def test_forged_tampered_or_replayed_webhooks_are_refused(delivery, reason):
    headers, body = delivery()
    with pytest.raises(PermanentError, match=reason):
        plugin.verify_webhook(headers, body, SECRET)


def test_another_users_shop_is_forbidden_and_bad_inventory_is_refused(server, shop):
    client, _ = make_client(server, shop)
    created = client.create_product(DRAFT)
    other = {
        **shop,
        "shop_id": next(_shop_ids),
        "user_id": 9999,
        "access_token": uuid.uuid4().hex,
    }
    requests.post(f"{server.url}/_sandbox/shops", json=other, timeout=5).raise_for_status()
    intruder, _ = make_client(server, other)
    headers = {
        "x-api-key": f"{shop['keystring']}:{shop['shared_secret']}",
        "Authorization": f"Bearer {shop['user_id']}.{shop['access_token']}",
    }
    url = f"{server.url}/v3/application/listings/{created.external_id}/inventory"

    with pytest.raises(PermanentError, match="403"):
        intruder.delete_product(created.external_id)
    missing_offerings = requests.put(
        url, headers=headers, json={"products": [{"sku": "X"}]}, timeout=5
    )
    duplicate = requests.put(
        url,
        headers=headers,
        json={
            "products": [
                {"sku": "A", "offerings": [{"price": 1, "quantity": 1, "is_enabled": True,
                                            "readiness_state_id": None}]},
                {"sku": "B", "offerings": [{"price": 1, "quantity": 1, "is_enabled": True,
                                            "readiness_state_id": None}]},
            ]
        },
        timeout=5,
    )  # fmt: skip

    assert missing_offerings.status_code == 400
    assert "offerings" in missing_offerings.json()["error"]
    assert duplicate.status_code == 400
    assert duplicate.json() == {"error": "products must differ in their property_values"}
    assert [str(lst["listing_id"]) for lst in state(server, shop)["listings"]] == [
        created.external_id
    ]
