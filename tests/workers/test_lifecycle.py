"""Real workers and beat: the retry ladder (shortened by configuration) and cancellation."""

from __future__ import annotations

import uuid

import pytest

from fusion.db.session import Database
from fusion.jobs import service
from fusion.jobs.models import JobStatus
from fusion.jobs.retry import JITTER
from tests.workers.conftest import Celery, wait_until
from workers.dispatcher import CeleryDispatcher

pytestmark = pytest.mark.usefixtures("executions")


def _status(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> JobStatus:
    with database.org_session(org) as session:
        return service.get_job(session, job_id).status


def test_a_retryable_failure_climbs_the_ladder_then_fails_for_good(
    celery: Celery, publisher: CeleryDispatcher, database: Database, org_a: uuid.UUID
) -> None:
    # Given a worker whose ladder is 1 s then 2 s, and beat publishing jobs as they fall due
    celery.worker("w1", FUSION_RETRY_LADDER="1,2")
    celery.beat()
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.fail", max_attempts=3)
    # When every attempt fails with a retryable error
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.FAILED, 60)
    # Then it ran three times, waiting out each step of the ladder, and kept the last error
    with database.org_session(org_a) as session:
        row = service.get_job(session, job.id)
        logs = service.job_logs(session, job.id)
    assert (row.attempts, row.last_error) == (3, "platform answered 503 on attempt 3")
    retries = [e for e in logs if e.data.get("retry_in_s") is not None]
    assert [e.data["attempt"] for e in retries] == [1, 2]
    for entry, step in zip(retries, (1, 2), strict=True):
        assert step <= entry.data["retry_in_s"] <= step * (1 + JITTER)
    starts = [e.created_at for e in logs if e.message.startswith("running: attempt")]
    failures = [e.created_at for e in retries]
    assert len(starts) == 3
    for failed_at, next_start, step in zip(failures, starts[1:], (1, 2), strict=True):
        assert (next_start - failed_at).total_seconds() >= step  # not started early
    assert logs[-1].message == (
        "failed for good after 3 attempts: platform answered 503 on attempt 3"
    )


def test_cancelling_a_running_job_stops_it_at_its_next_checkpoint(
    celery: Celery, publisher: CeleryDispatcher, database: Database, org_a: uuid.UUID
) -> None:
    celery.worker("w1")
    with database.org_session(org_a) as session:
        job = service.enqueue(
            session, org_id=org_a, job_type="test.record", payload={"sleep_s": 60}
        )
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.RUNNING, 20)
    with database.org_session(org_a) as session:
        service.cancel(session, job.id)
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.CANCELLED, 10)
    with database.org_session(org_a) as session:
        assert service.job_logs(session, job.id)[-1].message == (
            "cancelled: cancelled at a checkpoint"
        )
