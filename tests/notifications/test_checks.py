"""The periodic checks (what beat's ``fusion.notifications.check`` and the approval-expiry
task run) over the real database and Redis: each condition is queued for the channels that
subscribe to it, with its figures, and once per window however often the check runs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import Engine, text

import boot
from fusion import telemetry
from fusion.approvals.expiry import announce_expiring
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from fusion.notifications import checks
from tests.conftest import make_org

PROCESSES = {"inventory_sync": "sync_inventory", "order_pull": "reconcile_orders"}


@pytest.fixture(autouse=True)
def _no_publisher(redis_client: redis_lib.Redis) -> Iterator[None]:
    # Deliveries are only queued here (their job rows written); nothing is published.
    boot.load_jobs()  # the job types and their payload schemas, as every hub process has
    previous = dispatch.installed()
    dispatch.install(None)
    redis_client.delete(checks.THROTTLE_SNAPSHOT_KEY, telemetry.STORE_THROTTLES.key)
    yield
    dispatch.install(previous)


def _window_start(settings: Settings) -> datetime:
    """Just after the start of the current repeat window, so runs a minute apart share it."""
    repeat = settings.notify_repeat_s
    return datetime.fromtimestamp(time.time() // repeat * repeat + 5, UTC)


def _insert(admin_engine: Engine, table: str, **values: Any) -> uuid.UUID:
    values.setdefault("id", uuid.uuid4())
    casts = {
        "events": "CAST(:events AS jsonb)",
        "thresholds": "CAST(:thresholds AS jsonb)",
        "state": "CAST(:state AS jsonb)",
        "status": f"CAST(:status AS {_status(table)})",
    }
    cols = ", ".join(values)
    params = ", ".join(casts.get(k, f":{k}") for k in values)
    with admin_engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)
    return values["id"]


def _status(table: str) -> str:
    return {"jobs": "job_status", "approvals": "approval_status"}.get(table, "text")


def _channel(
    admin_engine: Engine, org: uuid.UUID, events: list[str], **thresholds: int
) -> uuid.UUID:
    return _insert(admin_engine, "notification_channels", org_id=org, name="ops", kind="webhook",
                   target="http://127.0.0.1:9/h", events=json.dumps(events),
                   thresholds=json.dumps(thresholds))  # fmt: skip


def _store(admin_engine: Engine, org: uuid.UUID, **values: Any) -> uuid.UUID:
    return _insert(admin_engine, "stores", org_id=org, platform="shopify", name="North shop",
                   external_id=uuid.uuid4().hex, **values)  # fmt: skip


def _queued(admin_engine: Engine, org: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT d.event, d.payload, j.job_type FROM notification_deliveries d "
                 "JOIN jobs j ON j.id = d.job_id WHERE d.org_id = :org "
                 "ORDER BY d.created_at, d.id"),
            {"org": org},
        ).all()  # fmt: skip
    assert all(r.job_type == "deliver_notification" for r in rows)
    return [(r.event, r.payload["data"]) for r in rows]


def test_a_late_inventory_sync_is_announced_once_per_window(
    admin_engine: Engine, database: Database, settings: Settings
) -> None:
    org = make_org(admin_engine, "Late")
    now = _window_start(settings)
    _channel(admin_engine, org, ["store.sync_late"], sync_late_minutes=30)
    _channel(admin_engine, org, ["stock.out"])  # subscribes to something else
    store = _store(admin_engine, org, created_at=now - timedelta(days=2),
                   last_synced_at=now - timedelta(minutes=45),
                   state=json.dumps({"orders_reconciled_at": now.isoformat()}))  # fmt: skip
    # When the check runs, twice within one window
    checks.run_checks(database, settings, processes=PROCESSES, now=now)
    checks.run_checks(database, settings, processes=PROCESSES, now=now + timedelta(seconds=60))
    # Then the subscribed channel has one notification: the inventory sync, 45 min old
    [(event, data)] = _queued(admin_engine, org)
    assert event == "store.sync_late"
    assert data == {"store_id": str(store), "store_name": "North shop", "platform": "shopify",
                    "process": "inventory_sync", "late_after_minutes": 30,
                    "last_at": (now - timedelta(minutes=45)).isoformat()}  # fmt: skip
    # And the next window announces it again
    checks.run_checks(database, settings, processes=PROCESSES,
                      now=now + timedelta(seconds=settings.notify_repeat_s))  # fmt: skip
    # (by then the order pull, done at the start, is 60 minutes old: late too)
    processes = sorted(d["process"] for _, d in _queued(admin_engine, org))
    assert processes == ["inventory_sync", "inventory_sync", "order_pull"]


def test_a_failing_pull_and_failed_jobs_above_the_threshold(
    admin_engine: Engine, database: Database, settings: Settings
) -> None:
    org = make_org(admin_engine, "Failing")
    now = _window_start(settings)
    _channel(admin_engine, org, ["store.sync_failing", "jobs.failing"], failed_jobs_per_hour=3)
    store = _store(admin_engine, org, last_synced_at=now)
    failed = dict(org_id=org, store_id=store, queue="shopify", status="failed", finished_at=now)
    pull = _insert(admin_engine, "jobs", job_type="reconcile_orders", **failed)
    _insert(admin_engine, "jobs", job_type="reconcile_orders", org_id=org, store_id=store,
            queue="shopify", status="completed", finished_at=now - timedelta(hours=1))  # fmt: skip
    # Given 2 failed jobs in the hour: below the threshold of 3
    _insert(admin_engine, "jobs", job_type="list_products", **failed)
    checks.run_checks(database, settings, processes=PROCESSES, now=now)
    assert [e for e, _ in _queued(admin_engine, org)] == ["store.sync_failing"]
    [(_, data)] = _queued(admin_engine, org)
    assert (data["process"], data["job_id"], data["store_id"]) == (
        "order_pull",
        str(pull),
        str(store),
    )
    # When a third fails (a notification's own failures are not counted)
    _insert(admin_engine, "jobs", job_type="deliver_notification", org_id=org, queue="default",
            status="failed", finished_at=now)  # fmt: skip
    _insert(admin_engine, "jobs", job_type="list_products", **failed)
    checks.run_checks(database, settings, processes=PROCESSES, now=now + timedelta(seconds=30))
    events = _queued(admin_engine, org)
    assert [e for e, _ in events] == ["store.sync_failing", "jobs.failing"]
    assert events[1][1] == {"failed": 3, "minutes": 60, "threshold": 3}


def test_throttling_above_the_rate_is_announced(
    admin_engine: Engine, database: Database, settings: Settings, redis_client: redis_lib.Redis
) -> None:
    org = make_org(admin_engine, "Throttled")
    now = _window_start(settings)
    _channel(admin_engine, org, ["store.throttled"], throttles_per_hour=100)
    store = _store(admin_engine, org, last_synced_at=now)
    field = telemetry.field_of([str(store), "shopify"])
    redis_client.hset(telemetry.STORE_THROTTLES.key, field, 5)
    checks.run_checks(database, settings, processes=PROCESSES, redis=redis_client, now=now)
    # 10 more in 10 minutes: 60 an hour, below 100
    redis_client.hincrby(telemetry.STORE_THROTTLES.key, field, 10)
    later = now + timedelta(minutes=10)
    checks.run_checks(database, settings, processes=PROCESSES, redis=redis_client, now=later)
    assert _queued(admin_engine, org) == []
    # 30 more in the next 10 minutes: 180 an hour
    redis_client.hincrby(telemetry.STORE_THROTTLES.key, field, 30)
    latest = later + timedelta(minutes=10)
    checks.run_checks(database, settings, processes=PROCESSES, redis=redis_client, now=latest)
    [(event, data)] = _queued(admin_engine, org)
    assert event == "store.throttled"
    assert (data["store_id"], data["throttles"], data["minutes"], data["per_hour"]) == (
        str(store), 30, 10.0, 180.0,
    )  # fmt: skip


def test_approvals_about_to_expire_are_announced_once(
    admin_engine: Engine, database: Database, settings: Settings
) -> None:
    org = make_org(admin_engine, "Expiring")
    other = make_org(admin_engine, "Quiet")
    _channel(admin_engine, org, ["approval.expiring"])
    now = datetime.now(UTC)
    soon = _insert(admin_engine, "approvals", org_id=org, resource_type="listing",
                   action="publish", expires_at=now + timedelta(minutes=20))  # fmt: skip
    _insert(admin_engine, "approvals", org_id=org, resource_type="listing", action="publish",
            expires_at=now + timedelta(hours=5))  # fmt: skip
    _insert(admin_engine, "approvals", org_id=org, resource_type="listing", action="publish",
            status="rejected", expires_at=now + timedelta(minutes=5))  # fmt: skip
    _insert(admin_engine, "approvals", org_id=other, resource_type="listing", action="publish",
            expires_at=now + timedelta(minutes=5))  # fmt: skip
    # When the expiry task runs twice
    assert announce_expiring(database, settings) == 1
    assert announce_expiring(database, settings) == 0
    # Then only the pending one expiring within the hour was announced, to its own org
    [(event, data)] = _queued(admin_engine, org)
    assert (event, data["approval_id"], data["action"]) == (
        "approval.expiring",
        str(soon),
        "publish",
    )
    assert _queued(admin_engine, other) == []
