"""``/metrics`` as a scraper reads it, fed by real worker and beat processes: job run time and
queue wait as histograms, counters that only grow (across worker restarts too), the per-store
series, webhook outcomes, orders, stock that hit 0, heartbeats."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api.app import create_app
from fusion import telemetry
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch, service
from fusion.jobs.models import JobStatus
from tests.support.api import METRICS_TOKEN
from tests.webhooks.conftest import SHOPIFY_SECRET, add_store, shopify_delivery, shopify_order
from tests.workers.conftest import Celery, wait_until
from workers.dispatcher import CeleryDispatcher

pytestmark = pytest.mark.usefixtures("executions")

SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def app(api_settings: Settings) -> Iterator[Flask]:
    # No scrape cache: each scrape of these tests reads the sources again.
    previous = dispatch.installed(), telemetry.installed()
    app = create_app(dataclasses.replace(api_settings, metrics_cache_s=0))
    app.config["TESTING"] = True
    yield app
    dispatch.install(previous[0])
    telemetry.install(previous[1])
    app.extensions["fusion"].database.dispose()


@pytest.fixture
def scraper(app: Flask) -> FlaskClient:
    return app.test_client()


def scrape(client: FlaskClient) -> tuple[dict[str, Any], Samples]:
    """The families (by name) and every sample (name and labels → value) of one scrape."""
    answer = client.get("/metrics", headers=SCRAPER)
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    return families, samples


def scrape_when(
    client: FlaskClient, ready: Callable[[Samples], bool], timeout: float = 10.0
) -> tuple[dict[str, Any], Samples]:
    """The first scrape whose samples are ``ready`` (or the last, after ``timeout``): a worker
    writes its histogram observations every ``telemetry.FLUSH_S``, a moment after the job."""
    deadline = time.monotonic() + timeout
    while True:
        families, samples = scrape(client)
        if ready(samples) or time.monotonic() > deadline:
            return families, samples
        time.sleep(0.1)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def histogram(families: dict[str, Any], name: str, **labels: str) -> tuple[list[float], float]:
    """The cumulative bucket values of one label set (in ``le`` order) and its ``_count``."""
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for s in families[name].samples:
        own = {k: v for k, v in s.labels.items() if k != "le"}
        if own != labels:
            continue
        if s.name == f"{name}_bucket":
            buckets.append((float(s.labels["le"]), s.value))
        elif s.name == f"{name}_count":
            count = s.value
    return [v for _, v in sorted(buckets)], count


def assert_only_grew(before: Samples, after: Samples, families: dict[str, Any]) -> None:
    monotonic = {n for n, f in families.items() if f.type in ("counter", "histogram")}
    for (name, labels), was in before.items():
        family = next((m for m in monotonic if name.startswith(m)), None)
        if family is None or name.endswith("_created"):
            continue
        assert after.get((name, labels), 0.0) >= was, (name, labels, was)


def _enqueue(database: Database, org: uuid.UUID, job_type: str, **payload: Any) -> uuid.UUID:
    with database.org_session(org) as session:
        return service.enqueue(session, org_id=org, job_type=job_type, payload=payload).id


def _finished(database: Database, org: uuid.UUID, ids: list[uuid.UUID]) -> bool:
    with database.org_session(org) as session:
        return all(
            service.get_job(session, i).status in (JobStatus.COMPLETED, JobStatus.FAILED)
            for i in ids
        )


def test_job_run_time_and_queue_wait_are_histograms_that_outlive_a_worker(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    scraper: FlaskClient,
    org_a: uuid.UUID,
) -> None:
    run = "fusion_job_run_seconds"
    wait = "fusion_job_queue_wait_seconds"
    completed = {"job_type": "test.record", "queue": "default", "outcome": "completed"}
    # Given a first scrape and a worker that runs three jobs and fails one for good
    families, first = scrape(scraper)
    assert families[run].type == "histogram" and families[wait].type == "histogram"
    worker = celery.worker("w1")
    ids = [_enqueue(database, org_a, "test.record", sleep_s=0.3) for _ in range(3)]
    ids.append(_enqueue(database, org_a, "test.fail", error="permanent"))
    wait_until(lambda: _finished(database, org_a, ids), 30)
    failed = {"job_type": "test.fail", "queue": "default", "outcome": "failed"}
    record = {"job_type": "test.record", "queue": "default"}

    def grown(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(first, name, **labels)

    families, second = scrape_when(
        scraper,
        lambda s: (
            grown(s, f"{run}_count", **completed) >= 3
            and grown(s, f"{run}_count", **failed) >= 1
            and grown(s, f"{wait}_count", **record) >= 3
        ),
    )
    # Then each run is one observation of the run-time histogram, under its outcome
    assert (
        value(second, f"{run}_count", **completed) - value(first, f"{run}_count", **completed) == 3
    )
    assert value(second, f"{run}_count", **failed) - value(first, f"{run}_count", **failed) == 1
    assert value(second, f"{run}_sum", **completed) - value(first, f"{run}_sum", **completed) >= 0.9
    buckets, count = histogram(families, run, **completed)
    assert buckets == sorted(buckets) and buckets[-1] == count  # cumulative, +Inf is the count
    fast = value(second, f"{run}_bucket", le="0.25", **completed)
    assert fast - value(first, f"{run}_bucket", le="0.25", **completed) == 0  # each took 0.3s+
    assert value(second, f"{wait}_count", **record) - value(first, f"{wait}_count", **record) == 3
    wait_buckets, wait_count = histogram(families, wait, **record)
    assert wait_buckets == sorted(wait_buckets) and wait_buckets[-1] == wait_count
    # And the old hour-window gauges are gone
    assert not any(name.startswith("fusion_job_duration_seconds") for name in families)
    assert_only_grew(first, second, families)

    # When that worker stops and another one runs two more jobs
    worker.stop()
    celery.worker("w2")
    more = [_enqueue(database, org_a, "test.record") for _ in range(2)]
    wait_until(lambda: _finished(database, org_a, more), 30)
    families, third = scrape_when(scraper, lambda s: grown(s, f"{run}_count", **completed) >= 5)
    # Then the counts went on from where they were: nothing was lost with the first worker
    assert (
        value(third, f"{run}_count", **completed) - value(first, f"{run}_count", **completed) == 5
    )
    assert_only_grew(second, third, families)
    # And each worker said it was alive, under its Celery node name
    beats = {
        s.labels["worker"]: s.value
        for s in families["fusion_worker_heartbeat_timestamp_seconds"].samples
    }
    for name in ("w1@", "w2@"):
        at = next(v for k, v in beats.items() if k.startswith(name))
        assert time.time() - at < 60


def test_beat_notes_its_heartbeat(celery: Celery, scraper: FlaskClient, redis_client: Any) -> None:
    redis_client.delete(telemetry.BEAT_HEARTBEAT_KEY)
    # Given no beat yet
    families, _ = scrape(scraper)
    assert families["fusion_beat_heartbeat_timestamp_seconds"].samples == []
    # When beat starts
    started = time.time()
    celery.beat()
    wait_until(lambda: redis_client.get(telemetry.BEAT_HEARTBEAT_KEY) is not None, 30)
    # Then the scrape shows when it last ticked
    families, samples = scrape(scraper)
    at = value(samples, "fusion_beat_heartbeat_timestamp_seconds")
    assert started - 1 <= at <= time.time()


def test_webhooks_orders_stock_and_stores_are_counted(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    settings: Settings,
    admin_engine: Engine,
    scraper: FlaskClient,
    org_a: uuid.UUID,
) -> None:
    # Given a Shopify store whose last sync and pull the hub recorded, and a SKU with 2 left
    store = add_store(database, settings, org_a, "shopify", SHOPIFY_SECRET)
    synced = datetime.now(UTC) - timedelta(minutes=3)
    pulled = datetime.now(UTC) - timedelta(minutes=7)
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE stores SET last_synced_at = :synced, "
                "state = jsonb_build_object('orders_reconciled_at', CAST(:pulled AS text)) "
                "WHERE id = :id"
            ),
            {"synced": synced, "pulled": pulled.isoformat(), "id": store},
        )
        product = uuid.uuid4()
        conn.execute(
            text("INSERT INTO products (id, org_id, title) VALUES (:p, :o, 'Tee')"),
            {"p": product, "o": org_a},
        )
        conn.execute(
            text("INSERT INTO product_variants (id, org_id, product_id, sku, price, "
                 "available_quantity) VALUES (:id, :o, :p, 'SKU-LAST', 10, 2)"),
            {"id": uuid.uuid4(), "o": org_a, "p": product},
        )  # fmt: skip
        shop = conn.execute(
            text("SELECT external_id FROM stores WHERE id = :id"), {"id": store}
        ).scalar_one()
    celery.worker("w1", queues="default,shopify")  # process_webhook runs on its platform's queue
    _, first = scrape(scraper)

    # When a signed order takes the last two and names a SKU the hub does not know, the same
    # body comes again, and a delivery with a wrong signature arrives
    order = shopify_order(5001, [("SKU-LAST", 2), ("NOT-OURS", 1)])
    body, headers = shopify_delivery(order, shop=shop)
    url = f"/webhooks/shopify/{store}"
    assert scraper.post(url, data=body, headers=headers).json == {"status": "accepted"}
    again = {**headers, "X-Shopify-Webhook-Id": str(uuid.uuid4())}
    assert scraper.post(url, data=body, headers=again).status_code == 200
    _, forged = shopify_delivery(shopify_order(5002), shop=shop, secret="not-the-secret")
    assert scraper.post(url, data=body, headers=forged).status_code >= 400

    def processed() -> bool:
        # The job is marked done after its handler's transaction committed (and counted)
        with admin_engine.connect() as conn:
            status = conn.execute(
                text(
                    "SELECT j.status::text FROM webhooks w JOIN jobs j ON j.id = w.job_id "
                    "WHERE w.delivery_id = :d"
                ),
                {"d": headers["X-Shopify-Webhook-Id"]},
            ).scalar_one_or_none()
        return status == "completed"

    wait_until(processed, 30)
    with admin_engine.connect() as conn:
        left = conn.execute(
            text("SELECT available_quantity FROM product_variants WHERE sku = 'SKU-LAST'")
        ).scalar_one()
    assert left == 0
    families, second = scrape(scraper)

    def grew(name: str, **labels: str) -> float:
        return value(second, name, **labels) - value(first, name, **labels)

    # Then each outcome, the order, the unknown line and the SKU sold out are counted once
    deliveries = "fusion_webhook_deliveries_total"
    assert grew(deliveries, platform="shopify", outcome="accepted") == 1
    assert grew(deliveries, platform="shopify", outcome="duplicate") == 1
    assert grew(deliveries, platform="shopify", outcome="refused") == 1
    assert grew("fusion_orders_ingested_total", platform="shopify") == 1
    assert grew("fusion_order_lines_unknown_sku_total", platform="shopify") == 1
    assert grew("fusion_stock_hit_zero_total") == 1
    assert_only_grew(first, second, families)
    # And the store's series carry its id, with the times the hub recorded
    labels = {"store_id": str(store), "platform": "shopify"}
    synced_at = value(second, "fusion_store_last_inventory_sync_timestamp_seconds", **labels)
    pulled_at = value(second, "fusion_store_last_order_pull_timestamp_seconds", **labels)
    assert abs(synced_at - synced.timestamp()) < 0.01
    assert abs(pulled_at - pulled.timestamp()) < 0.01
    assert value(second, "fusion_approvals_pending") == 0


def test_histogram_observations_reach_redis_in_one_write_per_flush_not_one_per_job(
    redis_client: Any,
) -> None:
    previous = telemetry.installed()
    telemetry.install(redis_client)
    job_type = f"test.batched.{uuid.uuid4().hex[:8]}"
    try:
        telemetry.flush()
        execs = redis_client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
        # When a worker's threads observe 50 job runs
        for _ in range(50):
            telemetry.JOB_RUN_SECONDS.observe(0.01, job_type, "default", "completed")
        telemetry.flush()
        # Then they reach Redis summed, in one MULTI/EXEC (two if the flusher's second ticked
        # meanwhile), not 50
        after = redis_client.info("commandstats")["cmdstat_exec"]["calls"]
        assert after - execs <= 2
        count = telemetry.field_of([job_type, "default", "completed", "count"])
        assert int(redis_client.hget(telemetry.JOB_RUN_SECONDS.key, count)) == 50
        total = telemetry.field_of([job_type, "default", "completed", "sum"])
        assert float(redis_client.hget(telemetry.JOB_RUN_SECONDS.key, total)) == pytest.approx(0.5)
    finally:
        telemetry.install(previous)
