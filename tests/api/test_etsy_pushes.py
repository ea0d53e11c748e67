"""An Etsy stock push through the front door: stock changes through the HTTP API, the real
debounced push jobs run by the in-process engine against the Etsy sandbox, and what the sandbox
itself counts and shows. Etsy replaces a listing's inventory whole, so a push writes every
product of the listing; with the listing's inventory remembered from the hub's last read
(fusion/plugins/_etsy_inventory.py) a push is one ``updateListingInventory``, not a read and a
write, and the prices stay Etsy's."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from fusion.inventory.service import PUSH_DEBOUNCE_S
from fusion.jobs.engine import Engine as JobEngine
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import sandboxes
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
def etsy() -> Iterator[SandboxServer]:
    with sandboxes(["etsy"]) as started:
        yield started["etsy"]


def _push_once_due(team: Team, job_engine: JobEngine, store_id: str) -> None:
    """Run the one pending (debounced) Etsy push once it is due, found through the jobs API."""
    listed = ok(
        team.viewer.get(
            f"/orgs/{team.org_id}/jobs",
            query_string={"job_type": "push_inventory", "store_id": store_id, "status": "pending"},
        )
    )
    [job] = listed["items"]
    time.sleep(PUSH_DEBOUNCE_S + 0.2)
    run(job_engine, job["id"])


def test_a_steady_state_etsy_push_is_one_call_and_keeps_etsys_prices(
    team_a: Team, job_engine: JobEngine, etsy: SandboxServer
) -> None:
    # Given a product of two SKUs, 10 each, published to an Etsy store through the API
    store_id, shop = connect(team_a, etsy, "etsy")
    sku, other = new_sku(), new_sku()
    product_id, [variant_id, _] = new_product(team_a, [sku, other], quantity=10)
    publish(team_a, job_engine, product_id, store_id)
    [listing] = shop_state(etsy, shop)["listings"]
    prices = {
        p["sku"]: p["offerings"][0]["price"]
        for p in shop_state(etsy, shop)["inventories"][str(listing["listing_id"])]["products"]
    }
    # When the stock changes twice through the API and each push runs (a new job each time,
    # so a new client: only the store's memo carries the inventory from one to the next)
    for delta, expected in ((-2, 8), (-3, 5)):
        before = shop_calls(etsy, shop)
        adjust_stock(team_a, variant_id, delta)
        _push_once_due(team_a, job_engine, store_id)
        # Then each push was one call to Etsy, and Etsy shows the hub's figure
        assert shop_calls(etsy, shop) - before == Counter({"updateListingInventory": 1})
        assert channel_shows("etsy", etsy, shop, sku) == expected
        assert channel_shows("etsy", etsy, shop, other) == 10
    inventory = shop_state(etsy, shop)["inventories"][str(listing["listing_id"])]
    assert {p["sku"]: p["offerings"][0]["price"] for p in inventory["products"]} == prices
