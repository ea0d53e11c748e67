"""A Shopify stock push through the front door: a stock change through the HTTP API, the real
push job run by the in-process engine against the Shopify sandbox, and what the sandbox itself
counts and shows. With the store's ids remembered (fusion/plugins/_shopify_ids.py) a push is
one ``inventorySetQuantities`` call; an id the merchant made stale on Shopify is looked up
again once and the push still lands."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from fusion.jobs.engine import Engine as JobEngine
from fusion.plugins.base import ProductDraft, StoreConnection, VariantDraft
from fusion.plugins.http import StoreHttp
from fusion.plugins.shopify import plugin
from fusion.sandbox import SandboxServer
from fusion.security.crypto import Secret
from tests.api.conftest import Team
from tests.plugins.e2e import ShopSpec, sandboxes
from tests.support.egress import LOOPBACK
from tests.support.merchant import (
    adjust_stock,
    channel_shows,
    connect,
    new_product,
    new_sku,
    ok,
    publish,
    run,
    shop_calls,
    shop_state,
)


@pytest.fixture(scope="module")
def shopify() -> Iterator[SandboxServer]:
    with sandboxes(["shopify"]) as started:
        yield started["shopify"]


def _pending_push(team: Team, store_id: str) -> str:
    """The one pending real-time push to the store, found through the jobs API."""
    listed = ok(
        team.viewer.get(
            f"/orgs/{team.org_id}/jobs",
            query_string={
                "job_type": "real_time_inventory",
                "store_id": store_id,
                "status": "pending",
            },
        )
    )
    [job] = listed["items"]
    return str(job["id"])


def _push(team: Team, job_engine: JobEngine, store_id: str) -> str:
    job_id = _pending_push(team, store_id)
    run(job_engine, job_id)
    return job_id


def _merchant(server: SandboxServer, shop: ShopSpec) -> Any:
    """The merchant's own hands on the shop (Shopify's admin): a client of its own, which
    remembers nothing and shares nothing with the hub."""
    conn = StoreConnection(
        store_id=f"merchant-{uuid.uuid4()}",
        org_id="merchant",
        platform="shopify",
        external_id=shop.external_id,
        base_url=server.url,
        credentials={k: Secret(v) for k, v in shop.credentials.items()},
    )
    http = StoreHttp(conn, spec=plugin.rate_limit, bucket=None, egress=LOOPBACK)
    return plugin.client(conn, http)


def test_a_steady_state_push_is_one_call(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer
) -> None:
    # Given a product of one SKU, 10 in stock, published to a Shopify store through the API
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, [variant_id] = new_product(team_a, [sku], quantity=10)
    publish(team_a, job_engine, product_id, store_id)
    # When the stock changes twice through the API and each push runs (a new job each time,
    # so a new client: only the store's memo carries the ids from one to the next)
    for delta, expected in ((-2, 8), (-3, 5)):
        before = shop_calls(shopify, shop)
        adjust_stock(team_a, variant_id, delta)
        _push(team_a, job_engine, store_id)
        # Then each push was one call to Shopify, and Shopify shows the hub's figure
        assert shop_calls(shopify, shop) - before == Counter({"inventorySetQuantities": 1})
        assert channel_shows("shopify", shopify, shop, sku) == expected


def test_an_id_made_stale_on_shopify_is_looked_up_once_and_the_push_lands(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer
) -> None:
    # Given a product of two SKUs, 10 each, published to a Shopify store through the API
    store_id, shop = connect(team_a, shopify, "shopify")
    sku, other = new_sku(), new_sku()
    product_id, [variant_id, _] = new_product(team_a, [sku, other], quantity=10)
    publish(team_a, job_engine, product_id, store_id)
    [product] = shop_state(shopify, shop)["products"]
    old_item = next(v["inventoryItem"]["id"] for v in product["variants"] if v["sku"] == sku)
    # and the merchant deletes the SKU's variant on Shopify and makes it again (a new
    # inventory item: the id the hub remembers is gone)
    merchant = _merchant(shopify, shop)
    variants = {s: VariantDraft(sku=s, price=Decimal("12.50"), quantity=0) for s in (sku, other)}
    merchant.update_product(product["id"], ProductDraft("Mug", [variants[other]]))
    merchant.update_product(product["id"], ProductDraft("Mug", [variants[other], variants[sku]]))
    [product] = shop_state(shopify, shop)["products"]
    new_item = next(v["inventoryItem"]["id"] for v in product["variants"] if v["sku"] == sku)
    assert new_item != old_item

    # When the SKU's stock changes through the API and the push runs
    before = shop_calls(shopify, shop)
    adjust_stock(team_a, variant_id, -4)
    job_id = _push(team_a, job_engine, store_id)

    # Then Shopify refused the stale id once, the ids were looked up again, and the push
    # landed on the new variant
    assert shop_calls(shopify, shop) - before == Counter(
        {"inventorySetQuantities": 2, "productVariants": 1, "locations": 1}
    )
    assert channel_shows("shopify", shopify, shop, sku) == 6
    logs = ok(team_a.viewer.get(f"/orgs/{team_a.org_id}/jobs/{job_id}"))["logs"]
    assert any("looked the batch's ids up again" in line["message"] for line in logs)
    # And the next push is one call again, with the id looked up
    before = shop_calls(shopify, shop)
    adjust_stock(team_a, variant_id, -1)
    _push(team_a, job_engine, store_id)
    assert shop_calls(shopify, shop) - before == Counter({"inventorySetQuantities": 1})
    assert channel_shows("shopify", shopify, shop, sku) == 5
