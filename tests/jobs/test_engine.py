"""Running jobs in-process against the real database: outcomes, ladder, leases, sweeps."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import service, sweeps
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.jobs.lanes import Lane
from fusion.jobs.models import Job, JobStatus
from fusion.jobs.retry import JITTER, backoff_s
from fusion.jobs.service import JobSpec
from tests.jobs.conftest import RecordingDispatcher, executions_of

pytestmark = pytest.mark.usefixtures("executions")


def _enqueue(database: Database, org: uuid.UUID, job_type: str, **kw: object) -> uuid.UUID:
    with database.org_session(org) as session:
        return service.enqueue(session, org_id=org, job_type=job_type, **kw).id  # type: ignore[arg-type]


def _job(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> Job:
    with database.org_session(org) as session:
        return service.get_job(session, job_id)


def _story(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> list[str]:
    with database.org_session(org) as session:
        return [e.message for e in service.job_logs(session, job_id)]


def _make_due(admin_engine: Engine, job_id: uuid.UUID) -> None:
    """Let time pass for one job: its scheduled time arrives now."""
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET scheduled_at = now() WHERE id = :j"), {"j": job_id})


def test_a_job_runs_once_through_pending_running_completed(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    job_id = _enqueue(database, org_a, "test.record")
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    job = _job(database, org_a, job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 1, {"attempt": 1})
    assert job.locked_by is None and job.finished_at is not None
    assert _story(database, org_a, job_id) == [
        "enqueued test.record on queue default",
        f"running: attempt 1 of 5, claimed by {job_engine.worker_id}",
        "completed",
    ]


def test_the_same_job_delivered_three_times_runs_once(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    job_id = _enqueue(database, org_a, "test.record", payload={"sleep_s": 0.5})
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(job_engine.execute(job_id)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == sorted([Outcome.COMPLETED, Outcome.SKIPPED, Outcome.SKIPPED])
    assert executions_of(admin_engine, job_id) == 1


def test_retryable_failures_follow_the_ladder_then_fail_for_good_keeping_the_last_error(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    ladder = job_engine.settings.retry_ladder_s
    assert ladder == (60, 300, 900, 3600)  # the architecture's ladder, unchanged
    job_id = _enqueue(database, org_a, "test.fail", max_attempts=4)
    for attempt in (1, 2, 3):
        before = datetime.now(UTC)
        assert job_engine.execute(job_id) is Outcome.RETRY
        job = _job(database, org_a, job_id)
        delay = (job.scheduled_at - before).total_seconds()
        assert job.status is JobStatus.PENDING and job.attempts == attempt
        assert ladder[attempt - 1] - 1 <= delay <= ladder[attempt - 1] * (1 + JITTER) + 1
        assert job.last_error == f"platform answered 503 on attempt {attempt}"
        assert job_engine.execute(job_id) is Outcome.SKIPPED  # not due yet
        _make_due(admin_engine, job_id)
    assert job_engine.execute(job_id) is Outcome.FAILED
    job = _job(database, org_a, job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 4)
    assert job.last_error == "platform answered 503 on attempt 4"
    assert _story(database, org_a, job_id)[-1] == (
        "failed for good after 4 attempts: platform answered 503 on attempt 4"
    )


def test_the_ladder_adds_jitter_and_holds_its_last_step() -> None:
    ladder = (60, 300, 900, 3600)
    assert [backoff_s(n, ladder, rng=_Fixed(0.0)) for n in (1, 2, 3, 4, 5, 9)] == [
        60,
        300,
        900,
        3600,
        3600,
        3600,
    ]
    assert backoff_s(2, ladder, rng=_Fixed(0.999)) == pytest.approx(300 * (1 + JITTER * 0.999))


class _Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_an_unexpected_exception_is_retried_and_named(
    database: Database, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    job_id = _enqueue(database, org_a, "test.fail", payload={"error": "crash"})
    assert job_engine.execute(job_id) is Outcome.RETRY
    assert _job(database, org_a, job_id).last_error == "ZeroDivisionError: division by zero"


def test_a_permanent_error_fails_at_once(
    database: Database, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    job_id = _enqueue(database, org_a, "test.fail", payload={"error": "permanent"})
    assert job_engine.execute(job_id) is Outcome.FAILED
    job = _job(database, org_a, job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error == "the platform refused the listing: title too long"


def test_rate_limited_reschedules_at_retry_after_without_spending_an_attempt(
    database: Database, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    job_id = _enqueue(
        database, org_a, "test.fail", payload={"error": "rate_limited", "retry_after_s": 42}
    )
    before = datetime.now(UTC)
    assert job_engine.execute(job_id) is Outcome.RESCHEDULED
    job = _job(database, org_a, job_id)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 0)
    assert 41 <= (job.scheduled_at - before).total_seconds() <= 43


def test_cancelling_a_running_job_stops_it_at_its_next_checkpoint(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    job_id = _enqueue(database, org_a, "test.record", payload={"sleep_s": 30})
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(job_engine.execute(job_id)))
    runner.start()
    _wait_for(lambda: _job(database, org_a, job_id).status is JobStatus.RUNNING)
    with database.org_session(org_a) as session:
        assert service.cancel(session, job_id).cancel_requested
    runner.join(10)
    assert outcome == [Outcome.CANCELLED]
    assert _job(database, org_a, job_id).status is JobStatus.CANCELLED
    assert executions_of(admin_engine, job_id) == 0
    assert _story(database, org_a, job_id)[-2:] == [
        "cancel requested; the job stops at its next checkpoint",
        "cancelled: cancelled at a checkpoint",
    ]


def test_the_reaper_returns_expired_leases_to_pending_and_fails_them_at_max_attempts(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    # A worker that claims and then dies: nobody renews its leases.
    dead = JobEngine(replace(settings, lease_s=2), database, worker_id="dead-worker")
    retry_id = _enqueue(database, org_a, "test.record")
    last_id = _enqueue(database, org_a, "test.record", max_attempts=1)
    cancel_id = _enqueue(database, org_a, "test.record")
    for job_id in (retry_id, last_id, cancel_id):
        assert dead._claim(job_id) is not None
    with database.org_session(org_a) as session:
        service.cancel(session, cancel_id)
    recorder.published.clear()
    assert sweeps.reap(database) == {}  # leases still valid
    time.sleep(2.2)
    assert sweeps.reap(database) == {"pending": 1, "failed": 1, "cancelled": 1}
    assert recorder.published == [(retry_id, "default", Lane.NORMAL)]  # rescued at once
    rescued = _job(database, org_a, retry_id)
    assert (rescued.status, rescued.attempts, rescued.locked_by) == (JobStatus.PENDING, 1, None)
    assert rescued.last_error == "worker dead-worker stopped renewing its lease (attempt 1 of 5)"
    assert _job(database, org_a, last_id).status is JobStatus.FAILED
    assert _job(database, org_a, cancel_id).status is JobStatus.CANCELLED
    dead.stop()


def test_the_heartbeat_keeps_a_long_job_without_checkpoints_from_being_reaped(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    # Given a 3-second lease and a handler that runs 5 s without a single checkpoint
    job_id = _enqueue(database, org_a, "test.record", payload={"sleep_s": 5, "checkpoints": False})
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(job_engine.execute(job_id)))
    runner.start()
    # When the reaper sweeps all along
    reaped: dict[str, int] = {}
    while runner.is_alive():
        for status, n in sweeps.reap(database).items():
            reaped[status] = reaped.get(status, 0) + n
        time.sleep(0.5)
    # Then the worker's heartbeat held the lease: nothing reaped, one attempt, one run
    assert reaped == {} and outcome == [Outcome.COMPLETED]
    assert _job(database, org_a, job_id).attempts == 1
    assert executions_of(admin_engine, job_id) == 1


def test_a_reaped_workers_late_finish_cannot_complete_the_job_twice(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, settings: Settings
) -> None:
    slow = JobEngine(replace(settings, lease_s=2), database, worker_id="slow-worker")
    job_id = _enqueue(database, org_a, "test.record", payload={"sleep_s": 3, "checkpoints": False})
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(slow.execute(job_id)))
    runner.start()  # its lease keeper is not started: the lease runs out mid-job
    time.sleep(2.3)
    sweeps.reap(database)
    fresh = JobEngine(settings, database, worker_id="fresh-worker")
    assert fresh.execute(job_id) is Outcome.COMPLETED
    runner.join(10)
    slow.stop()
    fresh.stop()
    assert outcome == [Outcome.ABANDONED]
    job = _job(database, org_a, job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 2, {"attempt": 2})


def test_the_dispatcher_publishes_lost_due_jobs_round_robin_across_orgs_and_not_future_ones(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
    recorder: RecordingDispatcher,
) -> None:
    with database.org_session(org_a) as session:
        # One due time each, a second apart: an org's backlog is ranked by due time, and
        # ties (one enqueue's now()) would leave which job is last to the database
        due = datetime.now(UTC) - timedelta(hours=1)
        backlog = service.enqueue_many(
            session,
            org_id=org_a,
            specs=[
                JobSpec("test.noop", scheduled_at=due + timedelta(seconds=n)) for n in range(120)
            ],
        )
    b_id = _enqueue(database, org_b, "test.noop")
    future_id = _enqueue(
        database, org_b, "test.noop", scheduled_at=datetime(2999, 1, 1, tzinfo=UTC)
    )
    # The broker lost everything: every message is older than the stale window.
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET dispatched_at = now() - interval '1 hour'"))
    recorder.published.clear()
    assert sweeps.dispatch_due(database, stale_s=30, batch=10) == 121
    published = recorder.ids
    assert sorted(published) == sorted([j.id for j in backlog] + [b_id])
    assert future_id not in published
    assert published.index(b_id) < 10  # B's job went out in the first batch
    lanes = {job_id: lane for job_id, _, lane in recorder.published}
    assert lanes[b_id] == Lane.NORMAL and lanes[backlog[-1].id] == Lane.BULK
    assert sweeps.dispatch_due(database, stale_s=30) == 0  # fresh messages are not repeated


def test_concurrent_dispatch_sweeps_never_publish_a_job_twice(
    database: Database, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        service.enqueue_many(session, org_id=org_a, specs=[JobSpec("test.noop")] * 400)
    recorder.published.clear()
    _expire_all_messages(database, org_a)  # the broker lost every message
    threads = [
        threading.Thread(target=sweeps.dispatch_due, args=(database,), kwargs={"batch": 25})
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(recorder.ids) == 400 == len(set(recorder.ids))


def _expire_all_messages(database: Database, org: uuid.UUID) -> None:
    with database.org_session(org) as session:
        session.execute(text("UPDATE jobs SET dispatched_at = now() - interval '1 hour'"))


def _wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
