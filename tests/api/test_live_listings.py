"""Stock reaches every listing that is on sale, on the paths beside a sale: a publish shows the
channel its figure after the rules, a change made while a listing is being published reaches
it once the publish is done, a listing whose take-down the platform refused keeps getting
stock, and a drift the recurring sync corrects is a row of the stock ledger.

Through the HTTP API, with the real job engine running each job as a worker would, against
the Shopify and Printify sandboxes on loopback; what a channel shows is read from its sandbox.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import Engine, text

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import sandboxes
from tests.support.merchant import (
    channel_shows,
    connect,
    list_product,
    new_product,
    new_sku,
    ok,
    publish,
    run,
)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SandboxServer]]:
    with sandboxes(["shopify", "printify"]) as started:
        yield started


def _pending(admin_engine: Engine, store_id: str, job_type: str) -> list[uuid.UUID]:
    with admin_engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id FROM jobs WHERE store_id = :s AND job_type = :t "
                    "AND status = 'pending' ORDER BY created_at"
                ),
                {"s": store_id, "t": job_type},
            ).scalars()
        )


def _run_when_due(job_engine: JobEngine, job_id: uuid.UUID, timeout: float = 15) -> None:
    """Run a job scheduled a moment ahead, once it is due."""
    deadline = time.monotonic() + timeout
    while (outcome := job_engine.execute(job_id)) is Outcome.SKIPPED:
        assert time.monotonic() < deadline, f"job {job_id} never became due"
        time.sleep(0.2)
    assert outcome is Outcome.COMPLETED


def test_a_publish_shows_the_channel_its_figure_after_the_rules(
    team_a: Team, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    # Given a Shopify store that holds 3 units back, and a SKU of 5
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = connect(team_a, servers["shopify"], "shopify")
    ok(team_a.owner.call("PATCH", f"{org}/stores/{store_id}", json={"stock_rules": {"buffer": 3}}))
    sku = new_sku()
    product_id, _ = new_product(team_a, [sku], quantity=5)
    # When the product is published there
    publish(team_a, job_engine, product_id, store_id)
    # Then the channel shows 2 from its first moment on sale, never the raw 5
    assert channel_shows("shopify", servers["shopify"], shop, sku) == 2


def test_a_change_made_during_a_publish_reaches_the_listing_once_it_is_published(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    # Given a product of 5 being published on a slow Printify
    org = f"/orgs/{team_a.org_id}"
    printify = servers["printify"]
    store_id, shop = connect(team_a, printify, "printify")
    sku = new_sku()
    product_id, [variant_id] = new_product(team_a, [sku], quantity=5)
    listing_id, publish_job = list_product(team_a, product_id, store_id)
    _knobs(printify, latency_ms=1500)
    publishing = threading.Thread(target=run, args=(job_engine, publish_job))
    publishing.start()
    try:
        _wait_for(lambda: _status(team_a, listing_id) == "publishing")
        # When 2 are written off while the platform is still answering the publish, and the
        # push that carries it runs at once
        adjusted = team_a.operator.post(
            f"{org}/variants/{variant_id}/stock-adjustments",
            json={"delta": -2, "reason": "two broke in the stockroom"},
        )
        assert ok(adjusted, 201)["available_quantity"] == 3
        [push] = _pending(admin_engine, store_id, "real_time_inventory")
        run(job_engine, push)
    finally:
        publishing.join(30)
        _knobs(printify, latency_ms=0)
    # Then the publish put the figure it read (5) on sale, and a push of the SKU follows it
    assert _status(team_a, listing_id) == "published"
    assert channel_shows("printify", printify, shop, sku) == 5
    [follow_up] = _pending(admin_engine, store_id, "real_time_inventory")
    _run_when_due(job_engine, follow_up)
    # And once it has run, the channel shows the hub's 3
    assert channel_shows("printify", printify, shop, sku) == 3


def test_a_listing_whose_take_down_was_refused_keeps_getting_stock(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    # Given a product on Printify whose delete the platform cannot do: the listing stays on
    # sale, failed with the reason
    org = f"/orgs/{team_a.org_id}"
    printify = servers["printify"]
    store_id, shop = connect(team_a, printify, "printify")
    sku = new_sku()
    product_id, [variant_id] = new_product(team_a, [sku], quantity=5)
    listing_id = publish(team_a, job_engine, product_id, store_id)
    refused = ok(team_a.owner.call("DELETE", f"{org}/products/{product_id}"), 202)["refused"]
    assert [r["id"] for r in refused] == [listing_id]
    assert _status(team_a, listing_id) == "failed"
    # When 2 are written off
    ok(
        team_a.operator.post(
            f"{org}/variants/{variant_id}/stock-adjustments",
            json={"delta": -2, "reason": "damaged"},
        ),
        201,
    )
    # Then the listing left on sale gets the new figure
    [push] = _pending(admin_engine, store_id, "real_time_inventory")
    run(job_engine, push)
    assert channel_shows("printify", printify, shop, sku) == 3


def test_a_drift_the_sync_corrects_is_a_row_of_the_stock_ledger(
    team_a: Team, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    # Given a published Shopify listing of 5, and 1 sold on the platform without the hub
    # hearing of it (no webhook)
    org = f"/orgs/{team_a.org_id}"
    shopify = servers["shopify"]
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, [variant_id] = new_product(team_a, [sku], quantity=5)
    publish(team_a, job_engine, product_id, store_id)
    order = {**shop.order_body, "lines": [{"sku": sku, "quantity": 1}]}
    requests.post(f"{shopify.url}/_sandbox/orders", json=order, timeout=10).raise_for_status()
    assert channel_shows("shopify", shopify, shop, sku) == 4
    # When the operator runs the inventory sync through the job API
    job = ok(team_a.operator.post(f"{org}/jobs", json={"job_type": "sync_inventory",
                                                       "store_id": store_id}), 202)  # fmt: skip
    run(job_engine, job["id"])
    # Then the channel is set back to the hub's 5, and the ledger says when, why and by which
    # job, without changing the hub's figure
    assert channel_shows("shopify", shopify, shop, sku) == 5
    stock = ok(team_a.viewer.get(f"{org}/variants/{variant_id}/stock"))
    assert stock["available_quantity"] == 5
    latest = stock["items"][0]
    assert (latest["kind"], latest["delta"], latest["on_hand_after"]) == ("sync_correction", 0, 5)
    assert latest["reason"] == "shopify held 4, is shown 5: corrected"
    assert (latest["actor"], latest["job_id"]) == ("system", job["id"])


def _knobs(server: SandboxServer, **values: object) -> None:
    requests.post(f"{server.url}/_sandbox/knobs", json=values, timeout=10).raise_for_status()


def _status(team: Team, listing_id: str) -> str:
    return str(team.viewer.get(f"/orgs/{team.org_id}/listings/{listing_id}").json["status"])


def _wait_for(check, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)
