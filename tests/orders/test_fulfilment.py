"""Fulfilment back to the channel and returns of single lines, through the HTTP API on a
running hub (real workers, beat and the four sandboxes over loopback): a shipped order with
its tracking on each platform's sandbox (Printify ships its own, read back), a partial return
by Shopify's refund webhook and by the returns endpoint, each giving back exactly that line's
stock once, and the requests the hub refuses."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from fusion.config import Settings
from fusion.security.signing import shopify_hmac
from tests.api.conftest import Team, make_team
from tests.plugins.e2e import ShopSpec
from tests.support.merchant import channel_shows, connect, list_product, new_product, new_sku, ok
from tests.support.stack import Stack, eventually, live_stack, warm_up_amazon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]

PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, PLATFORMS) as running:
        warm_up_amazon(running)
        yield running


@dataclass
class Sale:
    """An order placed on a sandbox and stored by the hub: 2 of ``skus[0]``, 1 of ``skus[1]``,
    each SKU holding 5 in the hub before it."""

    team: Team
    platform: str
    store_id: str
    shop: ShopSpec
    skus: list[str]
    variants: dict[str, str]  # sku -> variant id
    order: dict[str, Any]

    @property
    def org(self) -> str:
        return f"/orgs/{self.team.org_id}"

    def line(self, sku: str) -> dict[str, Any]:
        return next(line for line in self.order["lines"] if line["sku"] == sku)

    def stock(self, sku: str) -> int:
        path = f"{self.org}/variants/{self.variants[sku]}/stock"
        return int(ok(self.team.viewer.get(path))["available_quantity"])

    def movements(self, sku: str, kind: str) -> list[dict[str, Any]]:
        path = f"{self.org}/variants/{self.variants[sku]}/stock"
        items = ok(self.team.viewer.get(path, query_string={"limit": 100}))["items"]
        return [m for m in items if m["kind"] == kind]

    def shown(self) -> dict[str, Any]:
        return ok(self.team.viewer.get(f"{self.org}/orders/{self.order['id']}"))  # type: ignore[no-any-return]


def _sale(stack: Stack, platform: str) -> Sale:
    server = stack.servers[platform]
    team = make_team(stack.app.test_client(), f"Ship {platform}")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, server, platform)
    skus = [new_sku(), new_sku()]
    product_id, variant_ids = new_product(team, skus, quantity=5)
    listing_id, _ = list_product(team, product_id, store_id)
    eventually(
        lambda: ok(team.viewer.get(f"{org}/listings/{listing_id}"))["status"] == "published",
        f"the product is published on {platform}",
        timeout=90,
    )
    lines = [{"sku": skus[0], "quantity": 2}, {"sku": skus[1], "quantity": 1}]
    placed = requests.post(
        f"{server.url}/_sandbox/orders", json={**shop.order_body, "lines": lines}, timeout=10
    )
    assert placed.status_code == 201, placed.text
    # The pull behind the webhooks brings it (its webhook may too: it is stored once).
    pull = {"job_type": "reconcile_orders", "store_id": store_id}
    ok(team.operator.post(f"{org}/jobs", json=pull), 202)
    listed = eventually(
        lambda: [
            o
            for o in ok(team.viewer.get(f"{org}/orders", query_string={"store_id": store_id}))[
                "items"
            ]
            if o["stock_applied_at"]
        ],
        f"the {platform} order is in the hub with its stock taken",
        timeout=90,
    )
    order = ok(team.viewer.get(f"{org}/orders/{listed[0]['id']}"))
    return Sale(
        team, platform, store_id, shop, skus, dict(zip(skus, variant_ids, strict=True)), order
    )


def _sandbox_state(stack: Stack, platform: str) -> dict[str, Any]:
    answer = requests.get(f"{stack.servers[platform].url}/_sandbox/state", timeout=10)
    answer.raise_for_status()
    return answer.json()["state"]  # type: ignore[no-any-return]


def _settled(sale: Sale, fulfilment_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = next(f for f in sale.shown()["fulfilments"] if f["id"] == fulfilment_id)
        return found if found["status"] != "pending" else None

    return eventually(done, f"the {sale.platform} fulfilment settled", timeout=60)  # type: ignore[no-any-return]


def _platform_tracking(stack: Stack, sale: Sale) -> list[tuple[str, int]]:
    """(tracking number, units) of every shipment the platform's sandbox holds of the order."""
    state = _sandbox_state(stack, sale.platform)
    if sale.platform == "shopify":
        [order] = state[sale.shop.external_id]["orders"]
        return [
            (info["number"], sum(li["quantity"] for li in made["lineItems"]))
            for made in order.get("fulfillments", [])
            for info in made["trackingInfo"]
        ]
    if sale.platform == "etsy":
        [receipt] = state[sale.shop.external_id]["receipts"]
        assert receipt["is_shipped"] is True
        # Etsy tracks the receipt, not its lines.
        return [(s["tracking_code"], 0) for s in receipt.get("shipments", [])]
    packages = state[sale.shop.external_id]["shipments"].get(sale.order["external_id"], [])
    return [(p["trackingNumber"], sum(i["quantity"] for i in p["orderItems"])) for p in packages]


@pytest.mark.parametrize("platform", ["shopify", "etsy", "amazon_sc"])
def test_a_shipped_order_carries_its_tracking_to_the_platform(stack: Stack, platform: str) -> None:
    # Given an order of 2 + 1 units stored by the hub
    sale = _sale(stack, platform)
    first, second = sale.line(sale.skus[0]), sale.line(sale.skus[1])
    tracking = f"1Z{uuid.uuid4().hex[:12].upper()}"
    body = {
        "carrier": "UPS",
        "tracking_number": tracking,
        "tracking_url": f"https://track.example/{tracking}",
        "lines": [{"line_id": first["id"], "quantity": 1}],
    }
    key = {"Idempotency-Key": f"ship-{uuid.uuid4()}"}

    # When the merchant ships one unit of the first line (and the request is sent twice)
    pending = ok(
        sale.team.operator.post(
            f"{sale.org}/orders/{sale.order['id']}/fulfilments", json=body, headers=key
        ),
        202,
    )
    again = sale.team.operator.post(
        f"{sale.org}/orders/{sale.order['id']}/fulfilments", json=body, headers=key
    )

    # Then the same fulfilment answers both, pending until its job has the platform's answer
    assert ok(again, 202)["id"] == pending["id"]
    assert (pending["status"], pending["source"], pending["carrier"]) == ("pending", "hub", "UPS")
    assert pending["lines"] == [{"line_id": first["id"], "quantity": 1}]
    shipped = _settled(sale, pending["id"])
    assert shipped["status"] == "shipped", shipped["error"]
    assert shipped["error"] is None and shipped["shipped_at"] is not None
    assert shipped["external_id"] and shipped["platform_answer"]
    # And the platform holds that tracking, once
    units = 1 if platform != "etsy" else 0
    assert _platform_tracking(stack, sale) == [(tracking, units)]

    # When more is asked of the first line than is unshipped, or a line of no order
    too_many = {**body, "lines": [{"line_id": first["id"], "quantity": 2}]}
    stranger = {**body, "lines": [{"line_id": str(uuid.uuid4()), "quantity": 1}]}
    path = f"{sale.org}/orders/{sale.order['id']}/fulfilments"
    refused = sale.team.operator.post(path, json=too_many)
    unknown = sale.team.operator.post(path, json=stranger)

    # Then each is refused naming the line, and nothing more is sent
    assert refused.status_code == 422, refused.json
    assert "1 unshipped of 2" in refused.json["errors"]["lines.0.quantity"][0]
    assert unknown.status_code == 422, unknown.json
    assert "not a line of this order" in unknown.json["errors"]["lines.0.line_id"][0]
    assert len(sale.shown()["fulfilments"]) == 1

    # And the rest ships as a second fulfilment
    rest = {
        "carrier": "UPS",
        "tracking_number": tracking + "B",
        "lines": [
            {"line_id": first["id"], "quantity": 1},
            {"line_id": second["id"], "quantity": 1},
        ],
    }
    second_pending = ok(sale.team.operator.post(path, json=rest), 202)
    assert _settled(sale, second_pending["id"])["status"] == "shipped"
    expected = [(tracking, units), (tracking + "B", 2 if platform != "etsy" else 0)]
    assert _platform_tracking(stack, sale) == expected


def test_printify_ships_its_own_orders_and_the_hub_reads_them_back(stack: Stack) -> None:
    # Given a Printify order stored by the hub
    sale = _sale(stack, "printify")
    path = f"{sale.org}/orders/{sale.order['id']}/fulfilments"
    # When the merchant asks the hub to ship it
    body = {
        "carrier": "usps",
        "tracking_number": "X1",
        "lines": [{"line_id": sale.line(sale.skus[0])["id"], "quantity": 1}],
    }
    refused = sale.team.operator.post(path, json=body)
    # Then it is refused: Printify ships its own orders
    assert refused.status_code == 422, refused.json
    assert "fulfils its own orders" in refused.json["errors"]["order"][0]

    # When Printify ships the order and says so (order:shipment:created)
    number = f"9400{uuid.uuid4().int % 10**12:012d}"
    shipped = requests.post(
        f"{stack.servers['printify'].url}/_sandbox/shipments",
        json={
            "shop": int(sale.shop.external_id),
            "order_id": sale.order["external_id"],
            "carrier": "usps",
            "number": number,
        },
        timeout=10,
    )
    assert shipped.status_code == 201, shipped.text
    # And the pull runs too (it reads the same shipment)
    ok(
        sale.team.operator.post(
            f"{sale.org}/jobs", json={"job_type": "reconcile_orders", "store_id": sale.store_id}
        ),
        202,
    )

    # Then the order shows Printify's shipment, once, covering every line
    def read_back() -> list[dict[str, Any]]:
        return [f for f in sale.shown()["fulfilments"] if f["source"] == "platform"]

    [fulfilment] = eventually(read_back, "the Printify shipment is read back", timeout=60)
    assert (fulfilment["status"], fulfilment["carrier"], fulfilment["tracking_number"]) == (
        "shipped",
        "usps",
        number,
    )
    assert fulfilment["tracking_url"] == f"https://track.example/{number}"
    assert sorted((li["line_id"], li["quantity"]) for li in fulfilment["lines"]) == sorted(
        (line["id"], line["quantity"]) for line in sale.order["lines"]
    )
    eventually(
        lambda: ok(
            sale.team.viewer.get(
                f"{sale.org}/jobs",
                query_string={
                    "job_type": "reconcile_orders",
                    "store_id": sale.store_id,
                    "status": "completed",
                },
            )
        )["items"],
        "the pull ran",
    )
    assert len(sale.shown()["fulfilments"]) == 1


def _shopify_webhook(stack: Stack, sale: Sale, topic: str, payload: dict[str, Any]) -> int:
    """``payload`` delivered to the hub's receiver as Shopify signs it, under a new delivery
    id."""
    body = json.dumps(payload).encode()
    answer = requests.post(
        f"{stack.url}/webhooks/shopify/{sale.store_id}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": shopify_hmac(str(sale.shop.webhook_secret), body),
            "X-Shopify-Shop-Domain": sale.shop.external_id,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        },
        timeout=10,
    )
    return answer.status_code


def test_a_shopify_refund_of_one_line_gives_back_exactly_its_stock_once(stack: Stack) -> None:
    # Given a Shopify order that took 2 of the first SKU and 1 of the second
    sale = _sale(stack, "shopify")
    first, second = sale.skus
    assert (sale.stock(first), sale.stock(second)) == (3, 4)

    # When Shopify refunds one unit of the first line (refunds/create, restocked)
    refunded = requests.post(
        f"{stack.servers['shopify'].url}/_sandbox/refunds",
        json={
            "shop": sale.shop.external_id,
            "order_id": sale.order["external_id"],
            "lines": [{"sku": first, "quantity": 1}],
            "restock_type": "return",
        },
        timeout=10,
    )
    assert refunded.status_code == 201, refunded.text

    # Then exactly that unit comes back, as one return movement, and the channel shows it
    eventually(lambda: sale.stock(first) == 4, "the refunded unit is back in stock")
    assert sale.stock(second) == 4
    [movement] = sale.movements(first, "return")
    assert (movement["delta"], movement["order_id"]) == (1, sale.order["id"])
    assert sale.movements(second, "return") == []
    [returned] = sale.shown()["returns"]
    assert (returned["order_line_id"], returned["quantity"], returned["restocked"]) == (
        sale.line(first)["id"],
        1,
        1,
    )
    server = stack.servers["shopify"]
    eventually(
        lambda: channel_shows("shopify", server, sale.shop, first) == 4,
        "Shopify shows the returned unit",
    )

    # When the same refund is delivered again (Shopify resends; a body changed by a field the
    # hub does not read is no duplicate delivery of the first)
    resent = {**refunded.json(), "note": "resent"}
    assert _shopify_webhook(stack, sale, "refunds/create", resent) in (200, 202)
    path = f"{sale.org}/jobs"
    query = {"job_type": "process_webhook", "status": "completed", "limit": 100}

    def refunds_processed() -> int:
        jobs = ok(sale.team.viewer.get(path, query_string=query))["items"]
        return sum(1 for job in jobs if "refund_lines" in (job["result"] or {}))

    eventually(lambda: refunds_processed() == 2, "the redelivery was processed")
    # Then it gives nothing more
    assert sale.stock(first) == 4
    assert len(sale.movements(first, "return")) == 1
    assert len(sale.shown()["returns"]) == 1

    # When the order is then cancelled
    [order] = _sandbox_state(stack, "shopify")[sale.shop.external_id]["orders"]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    cancelled = {**order["rest"], "cancelled_at": stamp, "updated_at": stamp}
    assert _shopify_webhook(stack, sale, "orders/updated", cancelled) in (200, 202)
    # Then only what the refund did not give back comes back: every unit once, no more
    eventually(lambda: sale.shown()["status"] == "cancelled", "the order is cancelled")
    assert (sale.stock(first), sale.stock(second)) == (5, 5)
    [restored] = sale.movements(first, "cancellation")
    assert restored["delta"] == 1


@pytest.mark.parametrize("platform", ["etsy", "amazon_sc"])
def test_a_recorded_return_gives_back_exactly_that_lines_stock_once(
    stack: Stack, platform: str
) -> None:
    # Given an order that took 2 of the first SKU and 1 of the second
    sale = _sale(stack, platform)
    first, second = sale.skus
    line = sale.line(first)
    path = f"{sale.org}/orders/{sale.order['id']}/returns"
    body = {"lines": [{"line_id": line["id"], "quantity": 1}], "reason": "wrong size"}
    key = {"Idempotency-Key": f"return-{uuid.uuid4()}"}

    # When the merchant records one unit of the first line returned (and sends it twice)
    made = ok(sale.team.operator.post(path, json=body, headers=key), 201)
    repeat = ok(sale.team.operator.post(path, json=body, headers=key), 201)

    # Then that unit alone comes back, once
    assert made["restocked"] == {first: 1}
    assert repeat["restocked"] == {}
    assert [r["id"] for r in repeat["returns"]] == [r["id"] for r in made["returns"]]
    assert (sale.stock(first), sale.stock(second)) == (4, 4)
    [movement] = sale.movements(first, "return")
    assert movement["delta"] == 1 and "wrong size" in movement["reason"]

    # When more is returned than is left unreturned of the line
    refused = sale.team.operator.post(
        path, json={"lines": [{"line_id": line["id"], "quantity": 2}]}
    )
    # Then it is refused naming the line, and the stock stays
    assert refused.status_code == 422, refused.json
    assert "1 of 2 not yet returned" in refused.json["errors"]["lines.0.quantity"][0]
    assert sale.stock(first) == 4
    # And the last unit can still come back
    last = {"lines": [{"line_id": line["id"], "quantity": 1}]}
    assert ok(sale.team.operator.post(path, json=last), 201)["restocked"] == {first: 1}
    assert sale.stock(first) == 5
    assert len(sale.shown()["returns"]) == 2


def test_a_refusal_by_the_platform_leaves_the_fulfilment_failed_with_its_reason(
    stack: Stack,
) -> None:
    # Given a Shopify order the merchant already fulfilled in the Shopify admin
    sale = _sale(stack, "shopify")
    fulfilled = requests.post(
        f"{stack.servers['shopify'].url}/_sandbox/fulfillments",
        json={"shop": sale.shop.external_id, "order_id": sale.order["external_id"]},
        timeout=10,
    )
    assert fulfilled.status_code == 201, fulfilled.text
    # When the hub is asked to ship a line of it
    path = f"{sale.org}/orders/{sale.order['id']}/fulfilments"
    body = {
        "carrier": "DHL",
        "tracking_number": "JD0001",
        "lines": [{"line_id": sale.line(sale.skus[0])["id"], "quantity": 2}],
    }
    pending = ok(sale.team.operator.post(path, json=body), 202)
    # Then Shopify refuses it and the fulfilment says why
    failed = _settled(sale, pending["id"])
    assert failed["status"] == "failed"
    assert "Invalid fulfillment order line item quantity requested." in failed["error"]
    # And the failed fulfilment holds no units: the line may be shipped again
    again = sale.team.operator.post(path, json=body)
    assert again.status_code == 202, again.json
    # And a viewer may read but not ship
    assert sale.team.viewer.post(path, json=body).status_code == 403
