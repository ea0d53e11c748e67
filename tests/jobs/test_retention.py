"""Retention: finished jobs past their age are deleted with their logs, across orgs, in
batches; live jobs and young ones stay, and rows that named a pruned job keep theirs. Run
against the real database, and once through the beat task in a real worker."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

import celeryconfig
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs.retention import prune_finished_jobs
from tests.workers.conftest import Celery, celery, wait_until, worker_env  # noqa: F401
from workers.dispatcher import producer_app

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def add_job(admin: Engine, org: uuid.UUID, status: str, age_days: float | None) -> uuid.UUID:
    """A job of ``org`` in ``status``, finished ``age_days`` before NOW (None: unfinished),
    with one log line."""
    job_id = uuid.uuid4()
    finished = NOW - timedelta(days=age_days) if age_days is not None else None
    with admin.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, org_id, job_type, queue, status, finished_at, "
                "created_at) VALUES (:id, :org, 'noop', 'default', :status, :finished, "
                "COALESCE(:finished, now()))"
            ),
            {"id": job_id, "org": org, "status": status, "finished": finished},
        )
        conn.execute(
            text(
                "INSERT INTO job_logs (id, org_id, job_id, level, message) "
                "VALUES (:id, :org, :job, 'info', 'done')"
            ),
            {"id": uuid.uuid4(), "org": org, "job": job_id},
        )
    return job_id


def remaining(admin: Engine) -> set[uuid.UUID]:
    with admin.connect() as conn:
        return set(conn.execute(text("SELECT id FROM jobs")).scalars())


def log_count(admin: Engine) -> int:
    with admin.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM job_logs")).scalar_one())


def test_old_finished_jobs_go_with_their_logs_live_and_young_ones_stay(
    database: Database,
    settings: Settings,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    # Given jobs of two orgs: old and young finished ones, old failed ones, live ones
    retention = dataclasses.replace(settings, job_retention_days=14, failed_job_retention_days=90)
    old_done = [
        add_job(admin_engine, org_a, "completed", 20),
        add_job(admin_engine, org_b, "completed", 15),
        add_job(admin_engine, org_a, "cancelled", 30),
    ]
    old_failed = add_job(admin_engine, org_b, "failed", 100)
    kept = {
        add_job(admin_engine, org_a, "completed", 13),  # young
        add_job(admin_engine, org_b, "failed", 20),  # failed: kept 90 days
        add_job(admin_engine, org_a, "pending", None),
        add_job(admin_engine, org_b, "running", None),
    }
    # and a webhook delivery that names one of the old jobs
    webhook = uuid.uuid4()
    with admin_engine.begin() as conn:
        store = conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id) "
                "VALUES (:id, :org, 'shopify', 'S', 's1') RETURNING id"
            ),
            {"id": uuid.uuid4(), "org": org_a},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO webhooks (id, org_id, store_id, platform, delivery_id, topic, "
                "body_sha256, job_id) VALUES (:id, :org, :store, 'shopify', 'd1', "
                "'orders/create', :sha, :job)"
            ),
            {"id": webhook, "org": org_a, "store": store, "sha": "0" * 64, "job": old_done[0]},
        )
    # When retention runs, in batches of two
    deleted = prune_finished_jobs(database, retention, now=NOW, batch=2)
    # Then exactly the old finished jobs went, with their logs, in both orgs
    assert deleted == 4
    assert remaining(admin_engine) == kept
    assert old_failed not in remaining(admin_engine)
    assert log_count(admin_engine) == len(kept)
    with admin_engine.connect() as conn:
        assert conn.execute(
            text("SELECT job_id FROM webhooks WHERE id = :id"), {"id": webhook}
        ).scalar_one() is None  # fmt: skip
    # And a second run finds nothing more
    assert prune_finished_jobs(database, retention, now=NOW) == 0


def test_a_retention_of_zero_keeps_that_kind_for_ever(
    database: Database, settings: Settings, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    done = add_job(admin_engine, org_a, "completed", 400)
    failed = add_job(admin_engine, org_a, "failed", 400)
    keep_all = dataclasses.replace(settings, job_retention_days=0, failed_job_retention_days=0)
    assert prune_finished_jobs(database, keep_all, now=NOW) == 0
    assert remaining(admin_engine) == {done, failed}
    keep_failed = dataclasses.replace(settings, job_retention_days=14, failed_job_retention_days=0)
    assert prune_finished_jobs(database, keep_failed, now=NOW) == 1
    assert remaining(admin_engine) == {failed}


def test_the_beat_task_prunes_in_a_real_worker(
    celery: Celery,  # noqa: F811
    worker_env: dict[str, str],  # noqa: F811
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    old = add_job(admin_engine, org_a, "completed", 60)
    young = add_job(admin_engine, org_a, "completed", 0)
    worker = celery.worker("housekeeping", queues="default", concurrency=1)
    sender = producer_app()
    sender.conf.broker_url = worker_env["FUSION_REDIS_URL"]
    sender.send_task(celeryconfig.PRUNE_JOBS, queue="default")
    wait_until(lambda: old not in remaining(admin_engine), 30)
    assert young in remaining(admin_engine)
    wait_until(lambda: "pruned 1 finished job(s)" in worker.output(), 10)
