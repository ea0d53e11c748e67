"""The recurring per-store jobs (e.g. one sync_inventory job per active store per 15-minute
slot), against the real database (and, last, through a real Celery worker)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

import boot
import celeryconfig
from fusion.db.session import Database
from fusion.inventory.service import SYNC_INVENTORY_JOB as SYNC
from fusion.jobs import dispatch
from fusion.jobs.recurring import enqueue_for_due_stores, idempotency_key, slot_start
from fusion.orders.service import RECONCILE_JOB as RECONCILE_ORDERS
from fusion.webhooks.service import CONSUME_JOB as CONSUME_ORDER_QUEUE
from fusion.webhooks.service import order_queue_stores
from tests.jobs.conftest import RecordingDispatcher
from tests.workers.conftest import Celery, celery, wait_until, worker_env  # noqa: F401
from workers.dispatcher import producer_app

NOW = datetime(2026, 11, 28, 10, 7, 30, tzinfo=UTC)


@pytest.fixture
def recorder() -> Iterator[RecordingDispatcher]:
    boot.load_jobs()
    recording = RecordingDispatcher()
    dispatch.install(recording)
    try:
        yield recording
    finally:
        dispatch.install(None)


def add_store(
    admin_engine: Engine,
    org: uuid.UUID,
    platform: str = "shopify",
    status: str = "active",
    settings: dict[str, str] | None = None,
) -> uuid.UUID:
    store_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id, status, settings) "
                "VALUES (:id, :org, :platform, 'Shop', :ext, :status, CAST(:settings AS jsonb))"
            ),
            {"id": store_id, "org": org, "platform": platform, "ext": store_id.hex,
             "status": status, "settings": json.dumps(settings or {})},
        )  # fmt: skip
    return store_id


def sync_jobs(admin_engine: Engine) -> list[tuple[uuid.UUID, uuid.UUID, str, str, str]]:
    """(org, store, queue, status, idempotency key) of every sync_inventory job."""
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT org_id, store_id, queue, status::text, idempotency_key FROM jobs "
                "WHERE job_type = 'sync_inventory' ORDER BY created_at, store_id"
            )
        ).all()
    return [tuple(r) for r in rows]


def finish_all(admin_engine: Engine) -> None:
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'completed', finished_at = now()"))


def test_slot_start_floors_to_the_quarter_hour_in_utc() -> None:
    assert slot_start(NOW) == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    local = datetime(2026, 11, 28, 11, 59, 59, tzinfo=UTC).astimezone()
    assert slot_start(local) == datetime(2026, 11, 28, 11, 45, tzinfo=UTC)
    with pytest.raises(ValueError):
        slot_start(datetime(2026, 11, 28, 10, 7))  # naive


def test_shorter_slots_floor_to_their_own_length_and_key_by_the_second() -> None:
    twenty = timedelta(seconds=20)
    assert slot_start(NOW, twenty) == datetime(2026, 11, 28, 10, 7, 20, tzinfo=UTC)
    assert slot_start(NOW, timedelta(minutes=1)) == datetime(2026, 11, 28, 10, 7, tzinfo=UTC)
    store = uuid.uuid4()
    assert idempotency_key(store, NOW, "x", twenty) == f"x:{store}:2026-11-28T10:07:20Z"
    assert idempotency_key(store, NOW, "x", timedelta(minutes=1)) == f"x:{store}:2026-11-28T10:07Z"
    with pytest.raises(ValueError):
        slot_start(NOW, timedelta(milliseconds=500))


def test_order_queues_are_polled_for_the_stores_that_name_one_each_minute(
    recorder: RecordingDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    # Given Amazon stores with and without a queue, a paused one, and a Shopify store whose
    # settings happen to hold the same key (Shopify sends order events by webhook)
    queue = {"sqs_queue_url": "http://127.0.0.1:1/queue"}
    a = add_store(admin_engine, org_a, "amazon_sc", settings=queue)
    b = add_store(admin_engine, org_b, "amazon_sc", settings=queue)
    add_store(admin_engine, org_a, "amazon_sc")
    add_store(admin_engine, org_a, "amazon_sc", settings={"sqs_queue_url": ""})
    add_store(admin_engine, org_b, "amazon_sc", status="paused", settings=queue)
    add_store(admin_engine, org_a, "shopify", settings=queue)
    minute = timedelta(minutes=1)

    def poll(at: datetime) -> tuple[int, int]:
        run = enqueue_for_due_stores(
            database,
            now=at,
            job_type=CONSUME_ORDER_QUEUE,
            every=minute,
            stores=order_queue_stores(),
        )
        return run.due, run.enqueued

    # When beat's poll runs (only active Amazon stores come out of the cross-org read), and
    # again in the same minute (the two polled stores' jobs are still pending: not due)
    assert poll(NOW) == (4, 2)
    assert poll(NOW + timedelta(seconds=20)) == (2, 0)
    # Then the two stores that name a queue have one job each, on Amazon's queue
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT store_id, queue, idempotency_key FROM jobs WHERE job_type = :t"),
            {"t": CONSUME_ORDER_QUEUE},
        ).all()
    assert sorted((r.store_id, r.queue, r.idempotency_key) for r in rows) == sorted(
        (s, "amazon_sc", f"{CONSUME_ORDER_QUEUE}:{s}:2026-11-28T10:07Z") for s in (a, b)
    )
    # and once those ran, the next minute polls them again
    finish_all(admin_engine)
    assert poll(NOW + minute) == (4, 2)


def test_every_active_store_of_every_org_gets_exactly_one_sync_job(
    recorder: RecordingDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    # Given two stores in org A, one active and one paused store in org B
    a1 = add_store(admin_engine, org_a, "shopify")
    a2 = add_store(admin_engine, org_a, "etsy")
    b1 = add_store(admin_engine, org_b, "printify")
    add_store(admin_engine, org_b, "shopify", status="paused")
    # When the sync runs
    run = enqueue_for_due_stores(database, job_type=SYNC, now=NOW)
    # Then each active store has one pending job on its platform's queue, keyed by the slot
    assert (run.due, run.enqueued, run.failed_orgs) == (3, 3, 0)
    jobs = sync_jobs(admin_engine)
    assert sorted(jobs) == sorted(
        [
            (org_a, a1, "shopify", "pending", idempotency_key(a1, NOW, SYNC)),
            (org_a, a2, "etsy", "pending", idempotency_key(a2, NOW, SYNC)),
            (org_b, b1, "printify", "pending", idempotency_key(b1, NOW, SYNC)),
        ]
    )
    assert idempotency_key(a1, NOW, SYNC) == f"sync_inventory:{a1}:2026-11-28T10:00Z"
    # and each was published once, after its org's commit, on its queue
    assert sorted((q for _, q, _ in recorder.published)) == ["etsy", "printify", "shopify"]
    assert len(set(recorder.ids)) == 3


def test_a_second_run_in_the_same_slot_enqueues_nothing_the_next_slot_does(
    recorder: RecordingDispatcher, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    # Given a store whose sync for this slot already ran to completion
    store = add_store(admin_engine, org_a)
    assert enqueue_for_due_stores(database, job_type=SYNC, now=NOW).enqueued == 1
    finish_all(admin_engine)
    published = len(recorder.published)
    # When the sync runs again later in the same slot
    again = enqueue_for_due_stores(database, job_type=SYNC, now=NOW + timedelta(minutes=7))
    # Then the store is due but its slot key is taken: nothing new, nothing published
    assert (again.due, again.enqueued) == (1, 0)
    assert len(sync_jobs(admin_engine)) == 1
    assert len(recorder.published) == published
    # When the next slot starts, the store gets its next job
    assert (
        enqueue_for_due_stores(database, job_type=SYNC, now=NOW + timedelta(minutes=15)).enqueued
        == 1
    )
    keys = [key for *_, key in sync_jobs(admin_engine)]
    assert keys == [idempotency_key(store, NOW, SYNC), f"sync_inventory:{store}:2026-11-28T10:15Z"]


def test_a_store_whose_last_sync_has_not_finished_gets_none_in_the_next_slot(
    recorder: RecordingDispatcher, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    add_store(admin_engine, org_a)
    enqueue_for_due_stores(database, job_type=SYNC, now=NOW)
    with admin_engine.begin() as conn:  # the worker has claimed it and is still at it
        conn.execute(text("UPDATE jobs SET status = 'running'"))
    run = enqueue_for_due_stores(database, job_type=SYNC, now=NOW + timedelta(minutes=15))
    assert (run.due, run.enqueued) == (0, 0)
    assert [status for *_, status, _ in sync_jobs(admin_engine)] == ["running"]


def test_concurrent_runs_in_one_slot_enqueue_each_store_once(
    recorder: RecordingDispatcher, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    stores = {add_store(admin_engine, org_a) for _ in range(5)}
    runs = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        runs.append(enqueue_for_due_stores(database, job_type=SYNC, now=NOW))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(runs) == 4
    assert sum(r.enqueued for r in runs) == 5
    assert sorted(s for _, s, *_ in sync_jobs(admin_engine)) == sorted(stores)
    assert len(recorder.published) == 5


def test_the_beat_task_run_by_a_real_worker_enqueues_the_jobs(
    celery: Celery,  # noqa: F811
    worker_env: dict[str, str],  # noqa: F811
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    # Given a worker on the default queue (the sync jobs go to platform queues nobody serves)
    a = add_store(admin_engine, org_a, "shopify")
    b = add_store(admin_engine, org_b, "etsy")
    worker = celery.worker("housekeeping", queues="default", concurrency=2)
    # When beat's message for the task name arrives
    sender = producer_app()
    sender.conf.broker_url = worker_env["FUSION_REDIS_URL"]
    sender.send_task(celeryconfig.SYNC_INVENTORY, queue="default")
    # Then each store's job appears, pending, on its queue
    wait_until(lambda: len(sync_jobs(admin_engine)) == 2, 30)
    assert sorted((s, q, st) for _, s, q, st, _ in sync_jobs(admin_engine)) == sorted(
        [(a, "shopify", "pending"), (b, "etsy", "pending")]
    )
    wait_until(lambda: "2 job(s) enqueued" in worker.output(), 10)
    # and the order reconciliation task does the same for its pull
    sender.send_task(celeryconfig.RECONCILE_ORDERS, queue="default")
    wait_until(lambda: reconcile_count(admin_engine) == 2, 30)
    assert "plugin contracts synced" in worker.output()
    assert "unregistered task" not in worker.output().lower()


def reconcile_count(admin_engine: Engine) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE job_type = 'reconcile_orders'")
            ).scalar_one()
        )


def test_the_order_reconciliation_pull_is_enqueued_per_store_and_slot_the_same_way(
    recorder: RecordingDispatcher, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    # Given an active and a paused store
    store = add_store(admin_engine, org_a, "etsy")
    add_store(admin_engine, org_a, "shopify", status="paused")
    # When the reconciliation fan-out runs twice in one slot
    first = enqueue_for_due_stores(database, now=NOW, job_type=RECONCILE_ORDERS)
    second = enqueue_for_due_stores(
        database, now=NOW + timedelta(minutes=3), job_type=RECONCILE_ORDERS
    )
    # Then the active store has exactly one reconcile_orders job, keyed by the slot
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT store_id, queue, idempotency_key FROM jobs WHERE job_type = :t"),
            {"t": RECONCILE_ORDERS},
        ).all()
    assert (first.enqueued, second.enqueued) == (1, 0)
    assert [tuple(r) for r in rows] == [
        (store, "etsy", f"reconcile_orders:{store}:2026-11-28T10:00Z")
    ]
    assert sync_jobs(admin_engine) == []  # and no inventory sync was asked for
