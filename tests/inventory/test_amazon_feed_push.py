"""A real-time stock push to Amazon that carries several SKUs goes out as one
JSON_LISTINGS_FEED instead of one listing patch per SKU, through a real worker against the
Amazon sandbox; what the feed's report says of each SKU is recorded: the accepted figures as
pushed and confirmed, a refused SKU as a warning naming it and a failed job, never as sent. A
push of one SKU stays a patch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.plugins.amazon import FEED_MIN_SKUS
from fusion.sandbox import SandboxServer
from tests.plugins.e2e import Hub, Processes, Store, sandboxes, worker_env, workers_and_beat

pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")


@pytest.fixture(scope="module")
def amazon() -> Iterator[SandboxServer]:
    with sandboxes(["amazon_sc"]) as started:
        yield started["amazon_sc"]


@pytest.fixture(scope="module")
def procs(hub_env: dict[str, str]) -> Iterator[Processes]:
    env = worker_env(hub_env, FUSION_ORDER_QUEUE_POLL_S="0")
    with workers_and_beat(env, "amazon_sc", concurrency=2) as processes:
        yield processes


@pytest.fixture
def hub(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    procs: Processes,
    amazon: SandboxServer,
) -> Hub:
    amazon.app.knobs.reset()
    return Hub(settings, database, admin_engine, org_a)


def _published(hub: Hub, store: Store, count: int) -> list[str]:
    skus = []
    for n in range(count):
        listing_id, sku = hub.product(store, quantity=10 + n)
        job = hub.run("create_product", store, {"listing_id": str(listing_id)})
        assert job.status == "completed", job.last_error
        skus.append(sku)
    return skus


def _amazon_quantities(store: Store) -> dict[str, int]:
    listings = store.sandbox_state()["state"][store.shop.external_id]["listings"]
    return {sku: listing["quantity"] for sku, listing in listings.items()}


def _feeds(store: Store) -> list[dict[str, Any]]:
    return list(store.sandbox_state()["state"][store.shop.external_id]["feeds"].values())


def _pushed(admin: Engine, store: Store) -> dict[str, tuple[int | None, bool]]:
    with admin.connect() as conn:
        return {
            r.sku: (r.pushed_quantity, r.confirmed_at is not None)
            for r in conn.execute(
                text(
                    "SELECT ls.sku, ls.pushed_quantity, ls.confirmed_at FROM listing_stock ls "
                    "JOIN listings l ON l.id = ls.listing_id WHERE l.store_id = :s"
                ),
                {"s": store.id},
            )
        }


def test_a_push_of_several_skus_is_one_feed_and_each_outcome_is_recorded(
    hub: Hub, amazon: SandboxServer
) -> None:
    # Given an Amazon store with six SKUs published (more than the feed threshold)
    store = hub.connect("amazon_sc", amazon)
    count = int(FEED_MIN_SKUS.default) + 1
    skus = _published(hub, store, count)
    assert _feeds(store) == []
    # When the hub's figures of all of them change and one real-time push carries them
    wanted = {sku: n for n, sku in enumerate(skus)}
    for sku, quantity in wanted.items():
        hub.set_quantity(sku, quantity)
    job = hub.run("real_time_inventory", store, {"skus": skus})
    # Then Amazon got them in one JSON_LISTINGS_FEED, not a patch each, and shows every figure
    assert job.status == "completed", job.last_error
    assert [(f["feedType"], f["processingStatus"]) for f in _feeds(store)] == [
        ("JSON_LISTINGS_FEED", "DONE")
    ]
    assert _amazon_quantities(store) == wanted
    assert any(f"with {count} messages" in m for m in hub.logs(job.id))
    # and the hub recorded each figure as pushed and confirmed
    assert _pushed(hub.admin, store) == {sku: (q, True) for sku, q in wanted.items()}

    # When a SKU is gone from Amazon (removed in Seller Central) and the next push carries it
    gone = skus[0]
    seller = amazon.app.sellers[store.shop.external_id]  # type: ignore[attr-defined]
    seller.listings.pop(gone)
    again = {sku: 20 + n for n, sku in enumerate(skus)}
    for sku, quantity in again.items():
        hub.set_quantity(sku, quantity)
    job = hub.run("real_time_inventory", store, {"skus": skus})
    # Then the others were set by one more feed and are recorded as pushed; the refused SKU
    # is named by the failed job and a warning, and keeps its last confirmed figure
    assert len(_feeds(store)) == 2
    assert job.status == "failed"
    assert gone in job.last_error
    assert any(m.startswith(f"{gone}: amazon_sc refused the figure") for m in hub.logs(job.id))
    shown = _amazon_quantities(store)
    assert shown == {sku: q for sku, q in again.items() if sku != gone}
    assert _pushed(hub.admin, store) == {
        sku: (wanted[sku] if sku == gone else q, True) for sku, q in again.items()
    }


def test_a_push_of_one_sku_stays_a_listing_patch(hub: Hub, amazon: SandboxServer) -> None:
    store = hub.connect("amazon_sc", amazon)
    (sku,) = _published(hub, store, 1)
    hub.set_quantity(sku, 3)
    job = hub.run("real_time_inventory", store, {"skus": [sku]})
    assert job.status == "completed", job.last_error
    assert _feeds(store) == []
    assert _amazon_quantities(store) == {sku: 3}
