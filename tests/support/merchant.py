"""A merchant's steps through the HTTP API, shared by the front-door tests: connect a store of
a sandbox, make a product, publish it (running its job with the real engine), and read what a
channel itself shows of a SKU (from its sandbox's API, not the hub), and what the sandbox
itself holds and counts of the shop."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import requests

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.plugins.base import StoreConnection
from fusion.plugins.http import StoreHttp
from fusion.plugins.registry import get_plugin
from fusion.sandbox import SandboxServer
from fusion.security.crypto import Secret
from tests.api.conftest import Team
from tests.plugins.e2e import PROVISIONERS, ShopSpec
from tests.support.egress import LOOPBACK


def ok(response: Any, *codes: int) -> Any:
    """The answer's body, once its status is one of ``codes`` (200, 201 or 202 by default)."""
    assert response.status_code in (codes or (200, 201, 202)), (response.status_code, response.json)
    return response.json


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:8].upper()}"


def connect(team: Team, server: SandboxServer, platform: str) -> tuple[str, ShopSpec]:
    """A shop provisioned in the sandbox and connected by the team's owner: (store id, shop)."""
    shop = PROVISIONERS[platform](server.url, "tok" + uuid.uuid4().hex)
    body: dict[str, Any] = {
        "platform": platform,
        "name": f"{platform} shop",
        "external_id": shop.external_id,
        "base_url": server.url,
        "credentials": dict(shop.credentials),
        "settings": dict(shop.settings),
    }
    if shop.webhook_secret:
        body["webhook_secret"] = shop.webhook_secret
    if shop.catalog_rules:
        body["catalog_rules"] = dict(shop.catalog_rules)
    store = ok(team.owner.post(f"/orgs/{team.org_id}/stores", json=body), 201)
    return str(store["id"]), shop


def adjust_stock(team: Team, variant_id: str, delta: int) -> None:
    """A stock adjustment of the variant through the API, as an operator makes one."""
    ok(
        team.operator.post(
            f"/orgs/{team.org_id}/variants/{variant_id}/stock-adjustments",
            json={"delta": delta, "reason": "a correction"},
        ),
        201,
    )


def new_product(team: Team, skus: list[str], quantity: int = 5) -> tuple[str, list[str]]:
    """A product with one variant per SKU, each holding ``quantity``: (product id, variant ids)."""
    org = f"/orgs/{team.org_id}"
    product = ok(team.owner.post(f"{org}/products", json={"title": "Mug", "description": "A mug"}))
    variant_ids = []
    for sku in skus:
        variant = team.owner.post(
            f"{org}/products/{product['id']}/variants",
            json={"sku": sku, "price": "12.50", "available_quantity": quantity},
        )
        variant_ids.append(str(ok(variant, 201)["id"]))
    return str(product["id"]), variant_ids


def run(job_engine: JobEngine, job_id: Any, expected: Outcome = Outcome.COMPLETED) -> None:
    """Run one job as a worker would, and check how it ended."""
    assert job_engine.execute(uuid.UUID(str(job_id))) is expected


def list_product(team: Team, product_id: str, store_id: str) -> tuple[str, str]:
    """A draft listing of the product on the store, asked to publish: (listing id, job id)."""
    org = f"/orgs/{team.org_id}"
    listing = ok(team.owner.post(f"{org}/listings", json={"product_id": product_id,
                                                          "store_id": store_id}), 201)  # fmt: skip
    published = ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"), 202)
    return str(listing["id"]), str(published["job"]["id"])


def publish(team: Team, job_engine: JobEngine, product_id: str, store_id: str) -> str:
    """The product listed and published on the store (its job run): the listing's id."""
    listing_id, job_id = list_product(team, product_id, store_id)
    run(job_engine, job_id)
    shown = team.viewer.get(f"/orgs/{team.org_id}/listings/{listing_id}").json
    assert shown["status"] == "published", shown
    return listing_id


def channel_shows(platform: str, server: SandboxServer, shop: ShopSpec, sku: str) -> int | None:
    """What the channel itself shows of ``sku``, read from its sandbox's API (None: not
    listed there)."""
    conn = StoreConnection(
        store_id=f"reader-{uuid.uuid4()}",
        org_id="reader",
        platform=platform,
        external_id=shop.external_id,
        base_url=server.url,
        credentials={k: Secret(v) for k, v in shop.credentials.items()},
        settings=dict(shop.settings),
    )
    plugin = get_plugin(platform)
    client = plugin.client(
        conn, StoreHttp(conn, spec=plugin.rate_limit, bucket=None, egress=LOOPBACK)
    )
    for product in client.list_products():
        if sku in product.quantities:
            return int(product.quantities[sku])
    return None


def shop_state(server: SandboxServer, shop: ShopSpec) -> dict[str, Any]:
    """The sandbox's own state of the shop (``/_sandbox/state``)."""
    state = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()["state"]
    return state[shop.external_id]  # type: ignore[no-any-return]


def shop_calls(server: SandboxServer, shop: ShopSpec) -> Counter[str]:
    """The API calls the sandbox counted for the shop, by operation."""
    return Counter(shop_state(server, shop)["calls"])
