"""At the hub's default settings an Amazon store's SQS queue is read all the time: connecting
the store through the API starts its listener (``consume_order_queue``, long polling), so an
order is in moments after Amazon queued it, read by the listener that was already waiting, not
by a poll started a minute later. The Orders API lookup that prices it never waits inline for
the store's rate limit: short of quota, ``process_webhook`` is rescheduled (attempt not
counted) and the worker thread runs other jobs meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.plugins import amazon as amazon_plugin
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.sandbox import SandboxServer
from fusion.webhooks.service import CONSUME_JOB, PRICE_JOB, PROCESS_JOB
from tests.api.conftest import signup
from tests.plugins.e2e import (
    PROVISIONERS,
    Hub,
    Processes,
    Store,
    sandboxes,
    worker_env,
    workers_and_beat,
)
from tests.workers.conftest import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")


@pytest.fixture(scope="module")
def amazon() -> Iterator[SandboxServer]:
    with sandboxes(["amazon_sc"]) as started:
        yield started["amazon_sc"]


@pytest.fixture(scope="module")
def procs(hub_env: dict[str, str]) -> Iterator[Processes]:
    # The hub's defaults for the order queues: beat checks every 60 s, a listener listens 60 s.
    env = worker_env(hub_env)
    assert not {"FUSION_ORDER_QUEUE_POLL_S", "FUSION_ORDER_QUEUE_LISTEN_S"} & set(env)
    with workers_and_beat(env, "amazon_sc,default", concurrency=4) as processes:
        yield processes


@dataclass
class Connected:
    hub: Hub
    store: Store
    owner: Any
    org_id: uuid.UUID


@pytest.fixture
def connected(
    client: FlaskClient,
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    procs: Processes,
    amazon: SandboxServer,
) -> Iterator[Connected]:
    """An Amazon seller connected through the API alone, naming its SQS queue; paused at the
    end so its listener chain ends."""
    amazon.app.knobs.reset()
    owner = signup(client)
    org_id = uuid.UUID(owner.post("/orgs", json={"name": "Sells on Amazon"}).json["id"])
    shop = PROVISIONERS["amazon_sc"](amazon.url, "tok" + uuid.uuid4().hex)
    response = owner.post(
        f"/orgs/{org_id}/stores",
        json={
            "platform": "amazon_sc",
            "name": "Amazon",
            "external_id": shop.external_id,
            "base_url": amazon.url,
            "credentials": dict(shop.credentials),
            # The store lets its jobs wait up to a minute inline for rate-limit tokens: the
            # order lookup must be rescheduled all the same.
            "settings": {**shop.settings, "max_inline_wait_s": 60},
            "catalog_rules": dict(shop.catalog_rules),
        },
    )
    assert response.status_code == 201, response.json
    store = Store(uuid.UUID(response.json["id"]), "amazon_sc", shop, amazon)
    yield Connected(Hub(settings, database, admin_engine, org_id), store, owner, org_id)
    paused = owner.call("PATCH", f"/orgs/{org_id}/stores/{store.id}", json={"status": "paused"})
    assert paused.status_code == 200, paused.json


def _jobs(admin: Engine, store: Store, job_type: str) -> list[Any]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, status, attempts, created_at, started_at, finished_at, result "
                    "FROM jobs WHERE store_id = :s AND job_type = :t ORDER BY created_at"
                ),
                {"s": store.id, "t": job_type},
            ).all()
        )


def _process_jobs(admin: Engine, org_id: uuid.UUID) -> list[Any]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, status, attempts, finished_at FROM jobs "
                    "WHERE org_id = :o AND job_type = :t ORDER BY created_at"
                ),
                {"o": org_id, "t": PROCESS_JOB},
            ).all()
        )


def _stock_applied(admin: Engine, store: Store) -> bool:
    with admin.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM orders WHERE store_id = :s "
                    "AND stock_applied_at IS NOT NULL"
                ),
                {"s": store.id},
            ).scalar_one()
        )


def _held(admin: Engine, sku: str) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                text("SELECT available_quantity FROM product_variants WHERE sku = :sku"),
                {"sku": sku},
            ).scalar_one()
        )


def _logs(admin: Engine, job_id: uuid.UUID) -> list[str]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                text("SELECT message FROM job_logs WHERE job_id = :id ORDER BY created_at"),
                {"id": job_id},
            ).scalars()
        )


def _listening(admin: Engine, store: Store) -> Any:
    """The store's one listener, once it runs."""
    wait_until(lambda: [j.status for j in _jobs(admin, store, CONSUME_JOB)] == ["running"], 30)
    return _jobs(admin, store, CONSUME_JOB)[0]


def test_an_order_is_read_by_the_listener_already_waiting_on_the_queue(
    connected: Connected,
) -> None:
    hub, store = connected.hub, connected.store
    # Given an Amazon store just connected through the API at the hub's default settings:
    # its listener runs at once (beat's first check would come a minute later)
    listener = _listening(hub.admin, store)
    assert "the store reads an order queue: listening from now" in _logs(hub.admin, listener.id)
    listing_id, sku = hub.product(store, quantity=5)
    assert hub.run("create_product", store, {"listing_id": str(listing_id)}).status == "completed"
    # When a buyer orders 2 on Amazon
    store.place_order(sku, 2)
    # Then the order is in and its stock taken, read by that same listener, still listening:
    # no other listener was started, and none had to be
    wait_until(lambda: _stock_applied(hub.admin, store), 30)
    assert _held(hub.admin, sku) == 3
    assert [(j.id, j.status) for j in _jobs(hub.admin, store, CONSUME_JOB)] == [
        (listener.id, "running")
    ]
    with hub.admin.connect() as conn:
        stored_at = conn.execute(
            text("SELECT created_at FROM webhooks WHERE store_id = :s"), {"s": store.id}
        ).scalar_one()
    assert stored_at > listener.started_at


def test_a_rate_limited_order_lookup_is_rescheduled_and_its_worker_runs_other_jobs(
    connected: Connected, redis_client: redis_lib.Redis
) -> None:
    hub, store = connected.hub, connected.store
    _listening(hub.admin, store)
    listing_id, sku = hub.product(store, quantity=5)
    assert hub.run("create_product", store, {"listing_id": str(listing_id)}).status == "completed"
    # Given the store's getOrderItems quota is spent for the next 8 seconds (its own bucket:
    # the Orders API allows 0.5 calls a second, apart from the listings' 5)
    limit = amazon_plugin.OPERATION_LIMITS["getOrderItems"]
    bucket = TokenBucket(
        redis_client,
        f"{store.id}:getOrderItems",
        BucketConfig(capacity=limit.burst_size, refill_rate=limit.requests_per_second),
    )
    bucket.feedback(retry_after_s=8)
    # When a buyer orders 2 on Amazon
    store.place_order(sku, 2)
    # Then the stock is taken at once, from the notification's lines: no lookup waited for
    wait_until(lambda: _stock_applied(hub.admin, store), 30)
    assert _held(hub.admin, sku) == 3
    # (the handler's stock commits before the engine writes the job's outcome)
    [processing] = _process_jobs(hub.admin, connected.org_id)
    processed = hub.wait([processing.id], timeout=30)[processing.id]
    assert (processed.status, processed.attempts) == ("completed", 1)
    # and the lookup of its prices is rescheduled, not left waiting in its worker thread
    wait_until(lambda: len(_jobs(hub.admin, store, PRICE_JOB)) == 1, 30)
    job = _jobs(hub.admin, store, PRICE_JOB)[0]
    wait_until(lambda: any("rate limited; rescheduled" in m for m in _logs(hub.admin, job.id)), 30)
    assert any("(attempt not counted)" in m for m in _logs(hub.admin, job.id))
    # while it waits, the worker runs another job of the store's queue
    push = hub.run("real_time_inventory", store, {"skus": [sku]}, timeout=30)
    assert push.status == "completed"
    assert _jobs(hub.admin, store, PRICE_JOB)[0].status == "pending"
    # And once the quota is back the order is priced in one attempt, its stock taken once
    done = hub.wait([job.id], timeout=30)[job.id]
    assert (done.status, done.attempts) == ("completed", 1)
    assert done.finished_at > push.finished_at
    with hub.admin.connect() as conn:
        prices = conn.execute(
            text("SELECT l.unit_price FROM order_lines l JOIN orders o ON o.id = l.order_id "
                 "WHERE o.store_id = :s"),
            {"s": store.id},
        ).scalars().all()  # fmt: skip
    assert [str(p) for p in prices] == ["12.50"]
    assert _held(hub.admin, sku) == 3
