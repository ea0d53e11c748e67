"""Fault injection with real workers: kill -9 mid-job, Redis restarted with a backlog."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from sqlalchemy import Engine, text

from fusion.db.session import Database
from fusion.jobs import service
from fusion.jobs.models import Job, JobStatus
from fusion.jobs.service import JobSpec
from tests.jobs.conftest import executions_of
from tests.support.servers import RedisServer
from tests.workers.conftest import Celery, wait_until
from workers.dispatcher import CeleryDispatcher

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("executions")]


def _status(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> JobStatus:
    with database.org_session(org) as session:
        return service.get_job(session, job_id).status


def _running_job(database: Database, org: uuid.UUID, **payload: object) -> Job:
    """A ``test.record`` job enqueued with ``payload``, once a worker has claimed it."""
    with database.org_session(org) as session:
        job = service.enqueue(session, org_id=org, job_type="test.record", payload=payload)
    wait_until(lambda: _status(database, org, job.id) is JobStatus.RUNNING, 20, every=0.05)
    return job


def test_a_worker_killed_mid_job_leaves_the_job_completed_exactly_once(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    # Given a worker running a 3-second job, and beat sweeping every second
    doomed = celery.worker("doomed", concurrency=2)
    celery.beat()
    job = _running_job(database, org_a, sleep_s=3)
    time.sleep(1)
    # When the worker is killed with SIGKILL in the middle of it
    doomed.kill()
    killed_at = time.monotonic()
    assert executions_of(admin_engine, job.id) == 0
    survivor = celery.worker("survivor", concurrency=2)
    # Then the reaper gives the job back and the survivor completes it, once
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.COMPLETED, 60)
    rescue_s = time.monotonic() - killed_at
    assert executions_of(admin_engine, job.id) == 1
    with database.org_session(org_a) as session:
        job_row = service.get_job(session, job.id)
        story = [e.message for e in service.job_logs(session, job.id)]
    assert job_row.attempts == 2
    assert any(m.startswith("lease expired; back to pending") for m in story)
    assert survivor.proc is not None
    print(f"rescued and completed {rescue_s:.1f}s after SIGKILL")


def test_a_worker_stopped_gracefully_writes_the_outcomes_its_threads_handed_over_before_it_exits(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    # Given a worker whose job has run while another transaction holds the job's row, so its
    # outcome is handed to the worker's writer but cannot be written yet (no beat: nothing
    # would rescue the job if the outcome were lost)
    worker = celery.worker("w1", concurrency=2)
    job = _running_job(database, org_a, sleep_s=1, checkpoints=False)
    blocker = admin_engine.connect()
    tx = blocker.begin()
    try:
        blocker.execute(text("SELECT 1 FROM jobs WHERE id = :j FOR UPDATE"), {"j": job.id})
        wait_until(lambda: executions_of(admin_engine, job.id) == 1, 20, every=0.05)
        wait_until(lambda: f"job test.record {job.id}" in worker.output(), 10, every=0.05)
        # When the worker is told to stop (SIGTERM, a warm shutdown) with the write pending
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGTERM)
        time.sleep(1.5)
        # Then it waits for the write rather than exit with the outcome in memory
        assert worker.proc.poll() is None, worker.output()[-3000:]
    finally:
        tx.rollback()
        blocker.close()
    # And once the row is free it writes the outcome and exits: the job completed by its
    # first attempt, run once, every transition in its log
    worker.proc.wait(30)
    with database.org_session(org_a) as session:
        row = service.get_job(session, job.id)
        story = [e.data.get("status") for e in service.job_logs(session, job.id)]
    assert (row.status, row.attempts) == (JobStatus.COMPLETED, 1)
    assert executions_of(admin_engine, job.id) == 1
    assert [s for s in story if s] == ["pending", "running", "completed"]


def test_redis_restarted_with_a_thousand_jobs_pending_every_job_completes_once(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    redis_server: RedisServer | None,
) -> None:
    if redis_server is None:
        pytest.skip("FUSION_TEST_REDIS_URL is set: the shared Redis is not ours to restart")
    # Given 1,000 jobs published to Redis and a worker draining them; at 0.2 s a job the
    # 16 threads need at least 12 s, so the restart always finds a backlog however fast or
    # loaded the machine (at 0.05 s a loaded CI machine once drained all 1,000 first)
    with database.org_session(org_a) as session:
        jobs = service.enqueue_many(
            session,
            org_id=org_a,
            specs=[JobSpec("test.record", payload={"sleep_s": 0.2}) for _ in range(1000)],
        )
    celery.worker("w1", concurrency=8)
    celery.worker("w2", concurrency=8)
    celery.beat()
    wait_until(lambda: _completed(admin_engine) >= 50, 60, every=0.05)
    # When Redis restarts empty (no persistence): every message still queued is gone
    redis_server.restart()
    lost = 1000 - _completed(admin_engine)
    assert lost > 0
    # Then workers and beat reconnect, the dispatcher republishes, and every job completes
    wait_until(lambda: _completed(admin_engine) == 1000, 120, every=0.5)
    with admin_engine.connect() as conn:
        runs = conn.execute(
            text("SELECT count(*), count(DISTINCT job_id) FROM test_executions")
        ).one()
    assert tuple(runs) == (1000, 1000)
    assert {j.id for j in jobs} == set(_completed_ids(admin_engine))
    print(f"{lost} jobs had lost their message in the restart")


def _completed(admin_engine: Engine) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'completed'")).scalar_one()
        )


def _completed_ids(admin_engine: Engine) -> list[uuid.UUID]:
    with admin_engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM jobs WHERE status = 'completed'")).scalars())
