"""Real workers: the happy path, duplicate messages, a running job's message held by its
worker alone, lanes and bulk messages."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from sqlalchemy import Engine, text

from fusion.db.session import Database
from fusion.jobs import dispatch, service
from fusion.jobs.lanes import Lane
from fusion.jobs.models import JobStatus
from fusion.jobs.service import JobSpec
from tests.jobs.conftest import executions_of
from tests.workers.conftest import Celery, wait_until
from workers import dispatcher as dispatcher_module
from workers.dispatcher import BULK_CHUNK, CeleryDispatcher

pytestmark = pytest.mark.usefixtures("executions")


def _status(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> JobStatus:
    with database.org_session(org) as session:
        return service.get_job(session, job_id).status


def test_an_enqueued_job_is_run_by_a_worker_and_completed(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    celery.worker("w1")
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.record")
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.COMPLETED, 30)
    assert executions_of(admin_engine, job.id) == 1


def test_the_same_job_id_published_three_times_runs_once(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    worker = celery.worker("w1", concurrency=4)
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.record",
                              payload={"sleep_s": 1})  # fmt: skip
    publisher.publish([(job.id, "default"), (job.id, "default")])  # two more copies
    wait_until(lambda: worker.output().count(f"job {job.id} not claimable") >= 2, 30)
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.COMPLETED, 30)
    time.sleep(0.5)
    assert executions_of(admin_engine, job.id) == 1
    assert worker.output().count(f"job {job.id} not claimable") == 2


def test_a_running_jobs_message_is_held_in_its_workers_memory_alone(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    worker_env: dict[str, str],
    org_a: uuid.UUID,
) -> None:
    # Given two workers on the same queue, one of them running a 3-second job
    first = celery.worker("first", concurrency=1)
    second = celery.worker("second", concurrency=1)
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.record", payload={"sleep_s": 3})
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.RUNNING, 20)
    # Then Redis keeps no copy of the delivered message (no unacked hash, nothing queued):
    # nothing there can redeliver it to the idle worker while the other runs it
    client = redis.Redis.from_url(worker_env["FUSION_REDIS_URL"])
    assert client.keys("unacked*") == []
    assert sum(client.llen(key) for key in client.keys("default*")) == 0
    # And the job completes once, on whichever worker took it; the other never saw it
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.COMPLETED, 30)
    assert executions_of(admin_engine, job.id) == 1
    with admin_engine.connect() as conn:
        worker = conn.execute(
            text("SELECT worker FROM test_executions WHERE job_id = :j"), {"j": job.id}
        ).scalar_one()
    assert first.proc is not None and second.proc is not None
    ran, idle = (first, second) if f":{first.proc.pid}:" in worker else (second, first)
    assert ran.proc is not None and f":{ran.proc.pid}:" in worker
    assert str(job.id) not in idle.output()


def test_another_orgs_new_job_passes_an_orgs_backlog_on_the_same_queue(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    # Given org A's 400-job import waiting on the queue (bulk lane) and one slow worker slot
    with database.org_session(org_a) as session:
        service.enqueue_many(
            session,
            org_id=org_a,
            specs=[JobSpec("test.record", payload={"sleep_s": 0.02}) for _ in range(400)],
        )
    # When org B enqueues one job after all of them
    with database.org_session(org_b) as session:
        b_job = service.enqueue(session, org_id=org_b, job_type="test.record")
    celery.worker("w1", concurrency=1)
    # Then B's job runs long before A's backlog is through
    wait_until(lambda: _status(database, org_b, b_job.id) is JobStatus.COMPLETED, 60)
    with admin_engine.connect() as conn:
        a_done_before_b = conn.execute(
            text(
                "SELECT count(*) FROM jobs WHERE org_id = :a AND started_at < "
                "(SELECT started_at FROM jobs WHERE id = :b)"
            ),
            {"a": org_a, "b": b_job.id},
        ).scalar_one()
    assert a_done_before_b <= BULK_CHUNK  # at most the one message the worker had taken


def test_a_slow_bulk_message_passes_its_rest_on_as_two_and_spreads_over_the_worker_slots(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 12 jobs of 0.3 s each, stored with no message yet, and a worker with 4 slots
    dispatch.install(None)
    with database.org_session(org_a) as session:
        jobs = service.enqueue_many(
            session,
            org_id=org_a,
            specs=[JobSpec("test.record", payload={"sleep_s": 0.3}) for _ in range(12)],
        )
    dispatch.install(publisher)
    celery.worker("w1", concurrency=4)
    # When they are published as one bulk message (a batch spread over one message)
    monkeypatch.setattr(dispatcher_module, "SPREAD", 1)
    publisher.publish([(job.id, job.queue) for job in jobs], Lane.BULK)
    # Then each runs once, and more than one slot runs them at a time: the message ran what
    # fits in its 0.5 s slice and passed the rest on as two messages, which did the same
    ids = [job.id for job in jobs]
    wait_until(lambda: all(_status(database, org_a, j) is JobStatus.COMPLETED for j in ids), 60)
    assert [executions_of(admin_engine, j) for j in ids] == [1] * 12
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT extract(epoch FROM at) FROM test_executions WHERE job_id = ANY(:ids)"),
            {"ids": ids},
        ).scalars()
        ends = sorted(float(e) for e in rows)
    # A handler ends when it records its execution, 0.3 s or more after it began: the most
    # handlers running at one moment. A message's jobs run one after another, never
    # overlapping, so three at once are three messages made from the one published.
    at_once = max(sum(e - 0.3 < x <= e for e in ends) for x in ends)
    assert at_once >= 3, ends
