"""Each plugin's ``ship_order`` against its sandbox over real HTTP: the shipment reaches the
platform with its tracking, a retry after a lost answer (the same shipment sent again) finds
it there and ships nothing twice, and the sandbox refuses what the platform would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from fusion.errors import PermanentError
from fusion.plugins.base import PlatformClient, ProductDraft, Shipment, ShipmentLine, VariantDraft
from fusion.plugins.registry import get_plugin
from fusion.sandbox import SANDBOXES, SandboxServer
from tests.plugins.e2e import PROVISIONERS
from tests.sandbox.harness import connection, store_http

SHIPPING = ("shopify", "etsy", "amazon_sc")


@pytest.fixture(scope="module", params=SHIPPING)
def server(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    running = SandboxServer(SANDBOXES[request.param]()).start()
    yield running
    running.stop()


def _ordered(server: SandboxServer) -> tuple[PlatformClient, Any, dict[str, Any]]:
    """A shop selling one SKU, an order of 2 of it, and the order as the plugin reads it."""
    platform = server.app.platform
    shop = PROVISIONERS[platform](server.url, "tok" + uuid.uuid4().hex)
    conn = connection(
        platform,
        server.url,
        external_id=shop.external_id,
        credentials=shop.credentials,
        settings=shop.settings,
    )
    client = get_plugin(platform).client(conn, store_http(conn))
    sku = f"SHIP-{uuid.uuid4().hex[:6].upper()}"
    if platform != "amazon_sc":  # Amazon's sandbox takes an order of any SKU
        variant = VariantDraft(sku=sku, price=Decimal("12.00"), quantity=5, title="One")
        # Etsy requires a taxonomy_id: the store's mapping of the product's category gives it
        category = "1" if platform == "etsy" else None
        client.create_product(
            ProductDraft(title="Mug", description="A mug", variants=[variant], category=category)
        )
    body = {**shop.order_body, "lines": [{"sku": sku, "quantity": 2}]}
    requests.post(f"{server.url}/_sandbox/orders", json=body, timeout=10).raise_for_status()
    [order] = client.fetch_orders(datetime.now(UTC) - timedelta(hours=1))
    return client, order, shop.order_body


def _shipment(order: Any, quantity: int, tracking: str) -> Shipment:
    [line] = order.lines
    return Shipment(
        reference=str(uuid.uuid4()),
        order_external_id=order.external_id,
        carrier="UPS",
        tracking_number=tracking,
        lines=[ShipmentLine(str(line.external_line_id), line.sku, quantity)],
    )


def _tracking_held(server: SandboxServer) -> list[str]:
    state = requests.get(f"{server.url}/_sandbox/state", timeout=10).json()["state"]
    [shop] = [s for s in state.values() if s.get("orders") or s.get("receipts")]  # one shop
    if server.app.platform == "shopify":
        return [t["number"] for f in shop["orders"][0]["fulfillments"] for t in f["trackingInfo"]]
    if server.app.platform == "etsy":
        return [s["tracking_code"] for s in shop["receipts"][0].get("shipments", [])]
    return [p["trackingNumber"] for ps in shop["shipments"].values() for p in ps]


def test_a_retried_shipment_is_found_on_the_platform_and_not_made_twice(
    server: SandboxServer,
) -> None:
    requests.post(f"{server.url}/_sandbox/reset", timeout=10).raise_for_status()
    client, order, _ = _ordered(server)
    shipment = _shipment(order, 1, "1ZRETRY0001")
    # When the shipment is sent, and sent again (its answer was lost)
    first = client.ship_order(shipment)
    again = client.ship_order(shipment)
    # Then the platform holds it once, and the retry says it found it there
    assert (first.already, again.already) == (False, True)
    assert first.external_id and again.external_id == first.external_id
    assert _tracking_held(server) == ["1ZRETRY0001"]


def test_more_than_is_unshipped_is_refused_with_the_platforms_reason(
    server: SandboxServer,
) -> None:
    if server.app.platform == "etsy":
        pytest.skip("Etsy tracks a receipt, not its lines: there is no quantity to refuse")
    requests.post(f"{server.url}/_sandbox/reset", timeout=10).raise_for_status()
    client, order, _ = _ordered(server)
    with pytest.raises(PermanentError) as refused:
        client.ship_order(_shipment(order, 3, "1ZTOOMANY01"))
    reason = str(refused.value)
    assert "quantity" in reason.lower(), reason
    assert _tracking_held(server) == []
