"""A stock push that finds another push to its store running, through the front door: stock
changes through the HTTP API, the real push jobs run by the in-process engine against the
Shopify sandbox, the store's real push lock in Redis.

A push that waits for the lock must not hold its worker thread for long: while it holds one it
is no longer pending, so every later change makes another job, and on a store whose pushes run
for seconds (Amazon's 5 patches a second) those waiters take every thread of the platform's
queue and the orders behind them wait too. Past ``PUSH_LOCK_WAIT_S`` the job goes back to
pending, where later changes join it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from fusion.inventory.jobs import PUSH_LOCK_TTL_S, PUSH_LOCK_WAIT_S, push_lock_name
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import sandboxes
from tests.support.merchant import channel_shows, connect, new_product, new_sku, ok, publish, run


@pytest.fixture(scope="module")
def shopify() -> Iterator[SandboxServer]:
    with sandboxes(["shopify"]) as started:
        yield started["shopify"]


def _adjust(team: Team, variant_id: str, delta: int) -> None:
    ok(
        team.operator.post(
            f"/orgs/{team.org_id}/variants/{variant_id}/stock-adjustments",
            json={"delta": delta, "reason": "a correction"},
        ),
        201,
    )


def _pushes(team: Team, store_id: str) -> list[dict[str, Any]]:
    listed = ok(
        team.viewer.get(
            f"/orgs/{team.org_id}/jobs",
            query_string={"job_type": "real_time_inventory", "store_id": store_id},
        )
    )
    return list(listed["items"])


def test_a_push_waiting_for_its_stores_lock_goes_back_to_pending_and_later_changes_join_it(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer, redis_client: redis.Redis
) -> None:
    # Given a product of two SKUs, 10 each, published to a Shopify store through the API
    store_id, shop = connect(team_a, shopify, "shopify")
    first, second = new_sku(), new_sku()
    product_id, [first_variant, second_variant] = new_product(team_a, [first, second], 10)
    publish(team_a, job_engine, product_id, store_id)
    # and another push to the store running (holding the store's push lock)
    lock = redis_client.lock(push_lock_name(uuid.UUID(store_id)), timeout=PUSH_LOCK_TTL_S)
    assert lock.acquire(blocking=False)
    # When the stock of one SKU changes and its push starts while the lock is held
    _adjust(team_a, first_variant, -2)
    [push] = _pushes(team_a, store_id)
    outcome: list[Outcome] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(job_engine.execute(uuid.UUID(push["id"])))
    )
    waiter.start()
    # and the other SKU changes well after the push gave up waiting (the old wait was 5 s)
    time.sleep(PUSH_LOCK_WAIT_S + 2.0)
    _adjust(team_a, second_variant, -3)
    waiter.join(30)
    # Then the push went back to pending, and the second change joined it: one push for both
    assert outcome == [Outcome.RESCHEDULED]
    pushes = _pushes(team_a, store_id)
    assert len(pushes) == 1, [(p["status"], p["payload"]) for p in pushes]
    [pending] = pushes
    assert pending["id"] == push["id"] and pending["status"] == "pending"
    assert sorted(pending["payload"]["skus"]) == sorted([first, second])
    # And once the other push ends, that one push brings both figures to Shopify
    lock.release()
    due = datetime.fromisoformat(str(pending["scheduled_at"]))
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.1)
    run(job_engine, push["id"])
    assert channel_shows("shopify", shopify, shop, first) == 8
    assert channel_shows("shopify", shopify, shop, second) == 7


def test_a_sync_waits_out_a_short_push_rather_than_reading_the_catalog_again(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer, redis_client: redis.Redis
) -> None:
    # Given a product published to a Shopify store, and a push to the store running
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, _ = new_product(team_a, [sku], 10)
    publish(team_a, job_engine, product_id, store_id)
    lock = redis_client.lock(push_lock_name(uuid.UUID(store_id)), timeout=PUSH_LOCK_TTL_S)
    assert lock.acquire(blocking=False)
    # When an operator asks for a sync through the API, and it runs while that push lasts
    # longer than a push waits (it has read Shopify's whole catalog by then)
    body = {"job_type": "sync_inventory", "store_id": store_id}
    sync = ok(team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json=body), 202)
    outcome: list[Outcome] = []
    syncing = threading.Thread(
        target=lambda: outcome.append(job_engine.execute(uuid.UUID(sync["id"])))
    )
    syncing.start()
    time.sleep(PUSH_LOCK_WAIT_S + 1.0)
    lock.release()
    syncing.join(30)
    # Then the sync waited for the lock and finished, in its one run
    assert outcome == [Outcome.COMPLETED]
    done = ok(team_a.viewer.get(f"/orgs/{team_a.org_id}/jobs/{sync['id']}"))
    assert done["status"] == "completed" and done["result"]["checked"] == 1
    assert channel_shows("shopify", shopify, shop, sku) == 10
