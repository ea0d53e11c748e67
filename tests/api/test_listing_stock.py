"""What each channel was sent and holds, recorded by the real inventory jobs (run by the
in-process engine against the Shopify sandbox) and shown by ``GET .../listings/{id}/stock``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, text

from fusion import telemetry
from fusion.config import Settings
from fusion.db.session import Database
from fusion.inventory.channels import record_remote
from fusion.jobs import service as jobs
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.metrics import HubCollector
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import Hub, sandboxes


@pytest.fixture(scope="module")
def shopify() -> Iterator[SandboxServer]:
    with sandboxes(["shopify"]) as started:
        yield started["shopify"]


def _run(database: Database, engine: JobEngine, org: uuid.UUID, job_type: str, store, payload):
    with database.org_session(org) as session:
        job_id = jobs.enqueue(
            session, org_id=org, job_type=job_type, store_id=store.id, payload=payload
        ).id
    assert engine.execute(job_id) is Outcome.COMPLETED


def test_pushes_and_read_backs_are_recorded_and_drift_is_shown(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    job_engine: JobEngine,
    shopify: SandboxServer,
    team_a: Team,
) -> None:
    # Given a published Shopify listing of a SKU holding 10, with a buffer of 3 on the store
    org = team_a.org_id
    hub = Hub(settings, database, admin_engine, org)
    store = hub.connect("shopify", shopify)
    listing_id, sku = hub.product(store, quantity=10)
    _run(database, job_engine, org, "create_product", store, {"listing_id": str(listing_id)})
    patched = team_a.operator.call(
        "PATCH", f"/orgs/{org}/stores/{store.id}", json={"stock_rules": {"buffer": 3}}
    )
    assert patched.status_code == 200, patched.json
    # When the real-time push runs
    _run(database, job_engine, org, "real_time_inventory", store, {"skus": [sku]})
    # Then the listing shows 7 pushed and confirmed, not yet read back
    url = f"/orgs/{org}/listings/{listing_id}/stock"
    [row] = team_a.viewer.get(url).json["items"]
    assert (row["available"], row["shown"], row["last_pushed"]) == (10, 7, 7)
    assert row["pushed_at"] is not None and row["confirmed_at"] is not None
    assert (row["remote"], row["read_at"], row["drift"]) == (None, None, False)

    # When someone sells 2 on the platform itself (no webhook reaches the hub) and the
    # recurring sync reads the platform back and corrects it
    store.place_order(sku, 2)
    with admin_engine.begin() as conn:  # a later read than the push, whatever the clock says
        conn.execute(text("UPDATE listing_stock SET confirmed_at = confirmed_at - interval '1 s'"))
    _run(database, job_engine, org, "sync_inventory", store, {})
    # Then the listing shows what the channel held (5), read now, and the correction (7)
    [row] = team_a.viewer.get(url).json["items"]
    assert (row["remote"], row["last_pushed"], row["shown"]) == (5, 7, 7)
    assert row["read_at"] is not None
    assert row["drift"] is False  # corrected: a push of 7 was confirmed after the read
    # And a read-back the hub has not corrected yet (a later read, before its push) is drift
    with database.org_session(org) as session:
        record_remote(session, store.id, {sku: 4, "NOT-LISTED": 1}, datetime.now(UTC))
    [row] = team_a.viewer.get(url).json["items"]
    assert (row["remote"], row["shown"], row["drift"]) == (4, 7, True)


def test_pushes_and_the_last_sync_of_a_store_are_in_the_metrics(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    job_engine: JobEngine,
    shopify: SandboxServer,
    team_a: Team,
    redis_client: Any,
) -> None:
    previous = telemetry.installed()
    telemetry.install(redis_client)
    try:
        # Given a published Shopify listing
        org = team_a.org_id
        hub = Hub(settings, database, admin_engine, org)
        store = hub.connect("shopify", shopify)
        listing_id, sku = hub.product(store, quantity=10)
        _run(database, job_engine, org, "create_product", store, {"listing_id": str(listing_id)})
        # When the hub pushes its stock, a sale happens on the platform, and the sync corrects it
        _run(database, job_engine, org, "real_time_inventory", store, {"skus": [sku]})
        store.place_order(sku, 2)
        _run(database, job_engine, org, "sync_inventory", store, {})
    finally:
        telemetry.install(previous)
    # Then the scrape counts both pushes for the store, and shows when its sync completed
    body = _scrape(database, redis_client)
    labels = f'platform="shopify",store_id="{store.id}"'
    assert f"fusion_store_pushes_total{{{labels}}} 2.0" in body
    with admin_engine.connect() as conn:
        synced = conn.execute(
            text("SELECT last_synced_at FROM stores WHERE id = :id"), {"id": store.id}
        ).scalar_one()
    assert f"fusion_store_last_inventory_sync_timestamp_seconds{{{labels}}} " in body
    line = next(
        x
        for x in body.splitlines()
        if x.startswith("fusion_store_last_inventory_sync_") and str(store.id) in x
    )
    assert abs(float(line.rsplit(" ", 1)[1]) - synced.timestamp()) < 0.01


def _scrape(database: Database, redis_client: Any) -> str:
    # What /metrics renders (the endpoint's collector, without its cache)
    registry = CollectorRegistry()
    registry.register(HubCollector(database, redis_client, cache_s=0))
    return generate_latest(registry).decode()
