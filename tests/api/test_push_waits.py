"""A stock push that finds another push to its store running, through the front door: stock
changes through the HTTP API, the real push jobs run by the in-process engine against the
Shopify sandbox, the store's real push lock in Redis.

Pushes to one store never run side by side. One push may wait for the lock (taking it the
moment it is free); any other goes back to pending at once, where later changes join it. If
every push waited, each would hold a worker thread and, no longer pending, take no later
change: on a store whose pushes run for seconds (Amazon's 5 patches a second) each change
would make another waiter until every thread of the platform's queue waited and the orders
behind them waited too."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from fusion.inventory.jobs import PUSH_LOCK_TTL_S, push_lock_name
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
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
)


@pytest.fixture(scope="module")
def shopify() -> Iterator[SandboxServer]:
    with sandboxes(["shopify"]) as started:
        yield started["shopify"]


def _pushes(team: Team, store_id: str) -> dict[str, dict[str, Any]]:
    listed = ok(
        team.viewer.get(
            f"/orgs/{team.org_id}/jobs",
            query_string={"job_type": "real_time_inventory", "store_id": store_id},
        )
    )
    return {job["id"]: job for job in listed["items"]}


def _in_thread(job_engine: JobEngine, job_id: str) -> Callable[[], Outcome]:
    """Run the job as a worker thread would, now; the returned call waits for its outcome."""
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(job_engine.execute(uuid.UUID(job_id))))
    thread.start()

    def result() -> Outcome:
        thread.join(30)
        [ended] = outcome
        return ended

    return result


def _held_lock(redis_client: redis.Redis, store_id: str) -> Any:
    """The store's push lock, held as another push running would hold it."""
    lock = redis_client.lock(push_lock_name(uuid.UUID(store_id)), timeout=PUSH_LOCK_TTL_S)
    assert lock.acquire(blocking=False)
    return lock


def test_one_push_waits_for_its_stores_lock_and_the_next_goes_back_to_pending_for_changes(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer, redis_client: redis.Redis
) -> None:
    # Given a product of three SKUs, 10 each, published to a Shopify store through the API
    store_id, shop = connect(team_a, shopify, "shopify")
    skus = [new_sku(), new_sku(), new_sku()]
    product_id, variants = new_product(team_a, skus, 10)
    publish(team_a, job_engine, product_id, store_id)
    # and another push to the store running (holding the store's push lock)
    lock = _held_lock(redis_client, store_id)
    # When the first SKU's stock changes and its push starts: it waits for the lock
    adjust_stock(team_a, variants[0], -1)
    [waiting] = _pushes(team_a, store_id)
    waited = _in_thread(job_engine, waiting)
    time.sleep(0.5)
    # and the second SKU's change makes another push, which finds a push waiting already
    adjust_stock(team_a, variants[1], -2)
    [second] = set(_pushes(team_a, store_id)) - {waiting}
    run(job_engine, second, Outcome.RESCHEDULED)
    # Then that one is pending again, and the third SKU's change joins it
    adjust_stock(team_a, variants[2], -3)
    pushes = _pushes(team_a, store_id)
    assert set(pushes) == {waiting, second}, [(p["status"], p["payload"]) for p in pushes.values()]
    assert pushes[waiting]["status"] == "running"
    assert pushes[second]["status"] == "pending"
    assert sorted(pushes[second]["payload"]["skus"]) == sorted(skus[1:])
    # And once the other push ends, the waiting push takes the lock at once and completes,
    # and the pending one, when due, brings the rest to Shopify
    lock.release()
    assert waited() is Outcome.COMPLETED
    assert channel_shows("shopify", shopify, shop, skus[0]) == 9
    due = datetime.fromisoformat(str(pushes[second]["scheduled_at"]))
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.1)
    run(job_engine, second)
    assert [channel_shows("shopify", shopify, shop, sku) for sku in skus] == [9, 8, 7]


def test_a_sync_waits_for_the_lock_even_behind_a_waiting_push(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer, redis_client: redis.Redis
) -> None:
    # Given a product published to a Shopify store, a push to the store running, and a
    # change whose push waits for it
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, [variant] = new_product(team_a, [sku], 10)
    publish(team_a, job_engine, product_id, store_id)
    lock = _held_lock(redis_client, store_id)
    adjust_stock(team_a, variant, -4)
    [push] = _pushes(team_a, store_id)
    pushed = _in_thread(job_engine, push)
    time.sleep(0.5)
    # When an operator asks for a sync through the API and it runs meanwhile (it has read
    # Shopify's whole catalog by the time it asks for the lock)
    body = {"job_type": "sync_inventory", "store_id": store_id}
    sync = ok(team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json=body), 202)
    synced = _in_thread(job_engine, sync["id"])
    time.sleep(1.0)
    lock.release()
    # Then both waited for the lock and finished, the sync in its one run
    assert pushed() is Outcome.COMPLETED
    assert synced() is Outcome.COMPLETED
    done = ok(team_a.viewer.get(f"/orgs/{team_a.org_id}/jobs/{sync['id']}"))
    assert done["status"] == "completed" and done["result"]["checked"] == 1
    assert channel_shows("shopify", shopify, shop, sku) == 6
