"""Every plugin x every capability, end to end through real jobs against its sandbox.

Four Celery worker processes (threads pool) plus beat run for the whole module on the private
Redis; each platform's sandbox runs on a loopback port. Also shown here: error mapping (4xx
permanent, 5xx and timeouts retried, 429/THROTTLED rescheduled), a sandbox outage ridden out,
an idempotent create after a lost answer, and a canary credential that never leaks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import UnsupportedCapability
from fusion.plugins.base import Capability
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import get_plugin, plugin_slugs
from fusion.sandbox import SANDBOXES, SandboxServer
from fusion.stores.service import update_credentials
from tests.plugins.e2e import Hub, Processes, Store, sandboxes, worker_env, workers_and_beat
from tests.plugins.faults import LostAnswerProxy, RedisMonitor
from tests.support.logs import json_lines

# celeryconfig sets task_acks_on_failure_or_timeout, which Celery 5.6 flags as pending
# deprecation; under "warnings are errors" that would stop this process publishing at all.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")

PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")
AVAILABLE = [p for p in PLATFORMS if p in SANDBOXES and p in plugin_slugs()]


def _need(platform: str) -> None:
    if platform not in AVAILABLE:
        pytest.skip(f"{platform}: plugin or sandbox not installed in this tree")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SandboxServer]]:
    with sandboxes(AVAILABLE) as started:
        yield started


@pytest.fixture(scope="module")
def procs(hub_env: dict[str, str], settings: Settings) -> Iterator[Processes]:
    queues = "shopify,etsy,amazon_sc,printify,default"
    # The Amazon queue poll has its own module (tests/webhooks/test_order_queue.py); here it
    # would only add background jobs to the stores of the capability tests.
    # JSON logs, so the canary test below covers the redaction of that format too.
    env = worker_env(hub_env, FUSION_ORDER_QUEUE_POLL_S="0", FUSION_LOG_FORMAT="json")
    with workers_and_beat(env, queues, workers=4) as processes:
        yield processes


@pytest.fixture
def hub(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    procs: Processes,
    servers: dict[str, SandboxServer],
) -> Hub:
    for server in servers.values():
        server.app.knobs.reset()
    return Hub(settings, database, admin_engine, org_a)


def _products(hub: Hub, store: Store) -> dict[str, Any]:
    job = hub.run("list_products", store)
    assert job.status == "completed", job.last_error
    return {p["external_id"]: p for p in job.result["products"]}


def _roomy(hub: Hub, store: Store) -> None:
    # A standard Shopify store restores 50 points a second and one product listing costs
    # ~430: these tests would spend minutes waiting. A Plus store (1000/s, 20000) does not;
    # the store is configured so from the start (the hub would otherwise learn it only from
    # the first answer's throttleStatus, and an outage sends none).
    if store.platform == "shopify":
        store.knobs(rate_limit=[1000, 20000])
        with hub.admin.begin() as conn:
            conn.execute(
                text("UPDATE stores SET rate_limit_config = CAST(:c AS jsonb) WHERE id = :s"),
                {"c": '{"requests_per_second": 1000, "burst_size": 20000}', "s": store.id},
            )


def _refused(hub: Hub, store: Store, job_type: str, capability: str, payload: Any) -> None:
    with pytest.raises(UnsupportedCapability) as caught:
        hub.enqueue(job_type, store, payload)
    assert store.platform in str(caught.value) and capability in str(caught.value)
    with hub.admin.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM jobs WHERE job_type = :t AND store_id = :s"),
            {"t": job_type, "s": store.id},
        ).scalar_one()
    assert count == 0  # refused at enqueue: never stored, never retried


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_capability_end_to_end(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    plugin = get_plugin(platform)
    store = hub.connect(platform, servers[platform])
    _roomy(hub, store)
    listing_id, sku = hub.product(store, quantity=5)

    # create_product: draft -> publishing -> published, with the platform's id
    job = hub.run("create_product", store, {"listing_id": str(listing_id)})
    assert job.status == "completed", job.last_error
    listing = hub.listing(listing_id)
    assert listing.status == "published" and listing.external_id
    if plugin.level(Capability.CREATE_PRODUCT) == ContractLevel.WORKAROUND:
        assert any("workaround" in m for m in hub.logs(job.id))

    # list_products: the platform holds it, with the hub's quantity
    remote = _products(hub, store)
    assert listing.external_id in remote
    assert remote[listing.external_id]["quantities"].get(sku) == 5

    # update_product: a new title reaches the platform
    with hub.admin.begin() as conn:
        conn.execute(
            text("UPDATE products SET title = 'Mug v2' WHERE id = :p"),
            {"p": listing.product_id},
        )
    job = hub.run("update_product", store, {"listing_id": str(listing_id)})
    assert job.status == "completed", job.last_error
    # (per-SKU platforms such as Amazon name the item after product and variant)
    assert _products(hub, store)[listing.external_id]["title"].startswith("Mug v2")

    # real_time_inventory and bulk_operations: pushed, or refused at enqueue
    for job_type, quantity in (("real_time_inventory", 9), ("bulk_operations", 11)):
        if plugin.level(Capability(job_type)) == ContractLevel.UNSUPPORTED:
            _refused(hub, store, job_type, job_type, {"skus": [sku]})
            continue
        hub.set_quantity(sku, quantity)
        job = hub.run(job_type, store, {"skus": [sku]})
        assert job.status == "completed", job.last_error
        assert _products(hub, store)[listing.external_id]["quantities"][sku] == quantity

    # sync_inventory: drift is read back, corrected and logged
    hub.set_quantity(sku, 4)
    job = hub.run("sync_inventory", store)
    assert job.status == "completed", job.last_error
    assert job.result["corrected"] == 1
    assert any(f"{sku}: platform held" in m and "hub holds 4" in m for m in hub.logs(job.id))
    assert _products(hub, store)[listing.external_id]["quantities"][sku] == 4

    # order_webhooks (the reconciliation pull behind them): the order is stored once and
    # takes its stock once, however often the pull sees it
    store.place_order(sku, 1)
    for _ in range(2):
        job = hub.run("reconcile_orders", store)
        assert job.status == "completed", job.last_error
    with hub.admin.connect() as conn:
        lines = conn.execute(
            text(
                "SELECT l.sku, l.quantity FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "WHERE o.store_id = :s"
            ),
            {"s": store.id},
        ).all()
        applied = conn.execute(
            text(
                "SELECT count(*) FROM orders WHERE store_id = :s AND stock_applied_at IS NOT NULL"
            ),
            {"s": store.id},
        ).scalar_one()
        held = conn.execute(
            text("SELECT available_quantity FROM product_variants WHERE sku = :sku"), {"sku": sku}
        ).scalar_one()
    assert [(r.sku, r.quantity) for r in lines] == [(sku, 1)]
    assert (applied, held) == (1, 3)

    # delete_product: delisted and gone from the platform, or refused at enqueue
    if plugin.level(Capability.DELETE_PRODUCT) == ContractLevel.UNSUPPORTED:
        _refused(hub, store, "delete_product", "delete_product", {"listing_id": str(listing_id)})
    else:
        job = hub.run("delete_product", store, {"listing_id": str(listing_id)})
        assert job.status == "completed", job.last_error
        assert hub.listing(listing_id).status == "delisted"
        assert listing.external_id not in _products(hub, store)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_refused_credentials_fail_at_once(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    store = hub.connect(platform, servers[platform])
    _roomy(hub, store)
    with hub.database.org_session(hub.org_id) as session:
        from fusion.stores.models import Store as StoreRow

        row = session.get(StoreRow, store.id)
        assert row is not None
        update_credentials(
            session,
            settings=hub.settings,
            store=row,
            credentials={k: "wrong-" + v[-6:] for k, v in store.shop.credentials.items()},
        )
    job = hub.run("list_products", store)
    assert job.status == "failed" and job.attempts == 1  # permanent: never retried
    assert "4" in (job.last_error or "")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_5xx_and_timeouts_are_retried_until_the_platform_recovers(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    store = hub.connect(platform, servers[platform], store_settings={"read_timeout_s": 0.5})
    _roomy(hub, store)
    for knob, back, mark in (
        ({"error_rate": 1.0}, {"error_rate": 0.0}, "500"),
        ({"latency_ms": 1500}, {"latency_ms": 0}, "timed out"),
    ):
        store.knobs(**knob)
        job_id = hub.enqueue("list_products", store)
        _wait_for_attempts(hub, job_id, 2)
        store.knobs(**back)
        job = hub.wait([job_id], timeout=60)[job_id]
        assert job.status == "completed" and job.attempts >= 2
        assert any(mark in m for m in hub.logs(job_id)), hub.logs(job_id)


def _wait_for_attempts(hub: Hub, job_id: uuid.UUID, attempts: int, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while hub.job(job_id).attempts < attempts:
        assert time.monotonic() < deadline, f"job never reached attempt {attempts}"
        time.sleep(0.1)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_platform_throttling_reschedules_without_spending_attempts(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    # given a hub bucket far bigger than the platform's, and a platform whose allowance
    # someone else just spent (so the platform, not the hub, must say no)
    store = hub.connect(
        platform,
        servers[platform],
        rate_limit_config={"requests_per_second": 500, "burst_size": 500, "safety_margin": 0},
    )
    _tiny_platform_limit(store)
    store.drain_platform()  # the platform's allowance is spent; the hub's bucket is full
    job_ids = [hub.enqueue("list_products", store) for _ in range(3)]
    rows = hub.wait(job_ids, timeout=90)
    assert {r.status for r in rows.values()} == {"completed"}
    assert all(r.attempts == 1 for r in rows.values())  # throttles never counted
    logs = [m for job_id in job_ids for m in hub.logs(job_id)]
    assert any("rate limited; rescheduled" in m for m in logs)
    assert store.sandbox_state()["knobs"]["throttled_count"] >= 1


def _tiny_platform_limit(store: Store) -> None:
    # Shopify's bucket is in cost points: room for one product listing (~430 points reserved,
    # refunded to the few it actually costs on an empty shop), refilled slowly enough that the
    # drain's 200 calls outrun it even on a loaded machine (at 100/s, a slow one never throttled).
    # Amazon's first call in a job is the LWA token exchange, so its listing call counts as
    # "invested" and waits inline (up to MAX_INLINE_WAIT_S) before being rescheduled: the
    # platform must refill slower than that, or a slow machine sees no reschedule at all.
    limits = {"shopify": [20, 500], "etsy": [1, 10_000], "amazon_sc": [0.2, 1]}
    store.knobs(rate_limit=limits.get(store.platform, [1, 1]))


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_four_workers_share_one_bucket_without_a_single_throttle(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    # given a platform limited to a few requests per second, and the store told so
    store = hub.connect(platform, servers[platform])
    store.knobs(rate_limit=_few_per_second(platform))
    with hub.database.org_session(hub.org_id) as session:
        from fusion.stores.models import Store as StoreRow

        row = session.get(StoreRow, store.id)
        assert row is not None
        row.rate_limit_config = _few_per_second_config(platform)
    listing_id, sku = hub.product(store, quantity=3)
    assert hub.run("create_product", store, {"listing_id": str(listing_id)}).status == "completed"
    job_type = (
        "real_time_inventory"
        if get_plugin(platform).level(Capability.REAL_TIME_INVENTORY) != ContractLevel.UNSUPPORTED
        else "list_products"
    )
    payload = {"updates": [{"sku": sku, "quantity": 3}]} if job_type != "list_products" else None
    before = store.sandbox_state()["knobs"]["throttled_count"]
    # when a dozen jobs hit it through four worker processes at once
    job_ids = [hub.enqueue(job_type, store, payload) for _ in range(12)]
    rows = hub.wait(job_ids, timeout=120)
    # then every job completed and the platform never had to throttle
    assert {r.status for r in rows.values()} == {"completed"}
    assert store.sandbox_state()["knobs"]["throttled_count"] == before
    with hub.admin.connect() as conn:
        state = conn.execute(
            text("SELECT rate_limit_state FROM stores WHERE id = :s"), {"s": store.id}
        ).scalar_one()
    assert {"capacity", "refill_rate", "tokens", "updated_at", "source"} <= set(state)


def _few_per_second(platform: str) -> list[float]:
    # Shopify in points: a stock push (SKU lookup + mutation) costs ~160, so about one a second
    return {"shopify": [200, 600], "etsy": [4, 10_000]}.get(platform, [4, 4])


def _few_per_second_config(platform: str) -> dict[str, float]:
    if platform == "shopify":
        return {"requests_per_second": 200, "burst_size": 600}
    return {"requests_per_second": 4, "burst_size": 4}


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_outage_is_ridden_out_with_every_job_completed_once(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    store = hub.connect(platform, servers[platform])
    _roomy(hub, store)
    store.knobs(outage=True)
    job_ids = [hub.enqueue("list_products", store) for _ in range(8)]
    for job_id in job_ids:
        _wait_for_attempts(hub, job_id, 1)
    import time

    time.sleep(1.0)
    store.knobs(outage=False)
    rows = hub.wait(job_ids, timeout=90)
    assert {r.status for r in rows.values()} == {"completed"}
    assert any(r.attempts >= 2 for r in rows.values())
    with hub.admin.connect() as conn:
        completions = conn.execute(
            text(
                "SELECT job_id, count(*) FROM job_logs WHERE job_id = ANY(:ids) "
                "AND data->>'status' = 'completed' GROUP BY job_id"
            ),
            {"ids": job_ids},
        ).all()
    assert sorted(n for _, n in completions) == [1] * len(job_ids)


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_create_whose_answer_was_lost_is_not_repeated(
    hub: Hub, servers: dict[str, SandboxServer], platform: str
) -> None:
    _need(platform)
    # given a store reached through a proxy that loses the answer to the first create
    with LostAnswerProxy(servers[platform].url, platform) as proxy:
        store = hub.connect(
            platform,
            proxy.as_server(servers[platform]),
            store_settings={"read_timeout_s": 1.0},
        )
        listing_id, _ = hub.product(store)
        # when the create times out after the platform made the product, and is retried
        job = hub.run("create_product", store, {"listing_id": str(listing_id)}, timeout=90)
        assert proxy.lost == 1
        # then the job completed, and the platform holds exactly one product
        # (a PUT create is retried by the transport inside the attempt; a POST by the engine)
        assert job.status == "completed", job.last_error
        assert len(_products(hub, store)) == 1


@pytest.mark.slow
def test_a_canary_credential_never_leaves_the_plugin_call(
    hub: Hub, servers: dict[str, SandboxServer], procs: Processes, hub_env: dict[str, str]
) -> None:
    if not AVAILABLE:
        pytest.skip("no plugin with a sandbox installed")
    canary = "CANARY" + uuid.uuid4().hex
    with RedisMonitor(hub_env["FUSION_REDIS_URL"]) as monitor:
        job_ids = []
        for platform in AVAILABLE:
            store = hub.connect(platform, servers[platform], secret=canary)
            listing_id, _ = hub.product(store)
            job_ids.append(hub.enqueue("create_product", store, {"listing_id": str(listing_id)}))
            job_ids.append(hub.enqueue("list_products", store))
            store.knobs(error_rate=0.5)  # error paths log too
        hub.wait(job_ids, timeout=120)
    with hub.admin.connect() as conn:
        jobs = conn.execute(text("SELECT * FROM jobs")).all()
        logs = conn.execute(text("SELECT message, data FROM job_logs")).all()
    assert jobs and logs
    for where, blob in (
        ("job rows", repr([tuple(r) for r in jobs])),
        ("job logs", repr([tuple(r) for r in logs])),
        ("celery messages and redis traffic", monitor.captured()),
        ("worker and beat output", procs.output()),
    ):
        assert canary not in blob, f"the canary credential leaked into {where}"
    assert "run_job" in monitor.captured()  # the monitor did see the Celery traffic
    job_lines = [line for line in json_lines(procs.output()) if line.get("job_id")]
    assert {line["job_type"] for line in job_lines} >= {"create_product", "list_products"}
