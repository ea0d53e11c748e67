"""Bulk messages: ids claimed in one statement, outcomes written together, same guarantees."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import service, sweeps
from fusion.jobs.engine import FIRST_CLAIM, BatchRun, Outcome
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.models import JobStatus
from tests.jobs.conftest import executions_of

pytestmark = pytest.mark.usefixtures("executions")


def _enqueue(database: Database, org: uuid.UUID, job_type: str, **kw: object) -> uuid.UUID:
    with database.org_session(org) as session:
        return service.enqueue(session, org_id=org, job_type=job_type, **kw).id  # type: ignore[arg-type]


def _story(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> list[str]:
    with database.org_session(org) as session:
        return [e.message for e in service.job_logs(session, job_id)]


def test_a_batch_runs_only_its_claimable_jobs_each_once_with_their_log_entries(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    org_b: uuid.UUID,
    engine_settings: Settings,
    job_engine: JobEngine,
) -> None:
    taken = _enqueue(database, org_a, "test.record")
    later = _enqueue(
        database, org_a, "test.record", scheduled_at=datetime.now(UTC) + timedelta(hours=1)
    )
    ready = [_enqueue(database, org_a, "test.record"), _enqueue(database, org_b, "test.record")]
    other = JobEngine(engine_settings, database, worker_id="other-worker")
    try:
        assert other._claim(taken) is not None  # another worker already holds this one
        # a duplicate id in the message, too: it must not run twice
        run = job_engine.execute_many([taken, later, *ready, ready[0]], slice_s=5)
    finally:
        other.stop()
    assert run.outcomes == {"skipped": 2, "completed": 2} and run.passed_on == []
    assert [executions_of(admin_engine, j) for j in (taken, later, *ready)] == [0, 0, 1, 1]
    for org, job_id in zip((org_a, org_b), ready, strict=True):
        with database.org_session(org) as session:
            job = service.get_job(session, job_id)
            assert (job.status, job.attempts, job.result) == (
                JobStatus.COMPLETED,
                1,
                {"attempt": 1},
            )
            assert job.locked_by is None and job.finished_at is not None
        assert _story(database, org, job_id) == [
            "enqueued test.record on queue default",
            f"running: attempt 1 of 5, claimed by {job_engine.worker_id}",
            "completed",
        ]
    # the other worker's claim is untouched; the future job still waits, no attempt spent
    with database.org_session(org_a) as session:
        held = service.get_job(session, taken)
        assert (held.status, held.locked_by, held.attempts) == (
            JobStatus.RUNNING,
            "other-worker",
            1,
        )
        waiting = service.get_job(session, later)
        assert (waiting.status, waiting.attempts) == (JobStatus.PENDING, 0)
    assert len(_story(database, org_a, later)) == 1  # enqueued, nothing since


def test_a_batch_outcomes_keep_their_kinds_when_written_together(
    database: Database, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    ids = [
        _enqueue(database, org_a, "test.noop"),
        _enqueue(database, org_a, "test.fail", payload={"error": "permanent"}),
        _enqueue(database, org_a, "test.fail", payload={"error": "retryable"}),
        _enqueue(database, org_a, "test.fail", payload={"error": "rate_limited"}),
    ]
    run = job_engine.execute_many(ids, slice_s=5)
    assert run.outcomes == {"completed": 1, "failed": 1, "retry": 1, "rescheduled": 1}
    with database.org_session(org_a) as session:
        jobs = [service.get_job(session, j) for j in ids]
    assert [(j.status, j.attempts) for j in jobs] == [
        (JobStatus.COMPLETED, 1),
        (JobStatus.FAILED, 1),
        (JobStatus.PENDING, 1),
        (JobStatus.PENDING, 0),  # rate limited: the attempt is refunded
    ]
    assert jobs[0].result is None
    assert jobs[1].last_error == "the platform refused the listing: title too long"
    assert jobs[2].scheduled_at > datetime.now(UTC) and jobs[2].dispatched_at is None
    assert _story(database, org_a, ids[1])[-1].startswith("failed: the platform refused")


def test_after_the_slice_claimed_jobs_not_started_and_ids_never_claimed_are_passed_on(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    ids = [_enqueue(database, org_a, "test.record", payload={"sleep_s": 0.2}) for _ in range(3)]
    # When a batch of three slow jobs has a slice shorter than one of them
    run = job_engine.execute_many(ids, slice_s=0.05)
    # Then the first ran; the second, claimed with it (the first claim takes FIRST_CLAIM),
    # went back to pending; the third was never claimed; both are passed on, in order
    assert FIRST_CLAIM == 2
    assert run.outcomes == {"completed": 1, "passed_on": 1} and run.passed_on == ids[1:]
    assert [executions_of(admin_engine, j) for j in ids] == [1, 0, 0]
    with database.org_session(org_a) as session:
        rest = [service.get_job(session, j) for j in ids[1:]]
    assert [(j.status, j.attempts, j.locked_by) for j in rest] == [(JobStatus.PENDING, 0, None)] * 2
    assert _story(database, org_a, ids[1])[-1] == (
        "not started within its batch's time slice; back to pending (attempt not counted)"
    )
    assert _story(database, org_a, ids[2]) == ["enqueued test.record on queue default"]
    # passed on: the next message runs them, each once
    again = job_engine.execute_many(run.passed_on, slice_s=5)
    assert again.outcomes == {"completed": 2}
    assert [executions_of(admin_engine, j) for j in ids] == [1, 1, 1]
    assert Outcome.PASSED_ON.value == "passed_on"


def _claims(job_engine: JobEngine) -> list[int]:
    """How many ids each claim statement of ``job_engine`` asks for, from now on."""
    asked: list[int] = []

    def executing(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "job_claim_many" in statement:
            asked.append(len(parameters["ids"]))

    event.listen(job_engine._fast, "before_cursor_execute", executing)
    return asked


def test_a_batch_claims_a_few_ids_first_then_as_many_as_its_pace_fits_in_the_slice(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    fast = [_enqueue(database, org_a, "test.noop") for _ in range(40)]
    slow = [_enqueue(database, org_a, "test.record", payload={"sleep_s": 0.2}) for _ in range(6)]
    asked = _claims(job_engine)
    # When a batch of 40 quick jobs runs with a generous slice
    quick = job_engine.execute_many(fast, slice_s=5)
    # Then it took two claims: the first FIRST_CLAIM ids, then all the rest at once
    assert quick.outcomes == {"completed": 40} and quick.passed_on == []
    assert asked == [FIRST_CLAIM, 40 - FIRST_CLAIM]
    # When a batch of 6 jobs of 0.2 s each has a 0.5 s slice
    asked.clear()
    run = job_engine.execute_many(slow, slice_s=0.5)
    # Then it claimed the first two, then (their pace leaving room for one more at most) one
    # at a time, and stopped with the slice: the ids after those it claimed were never
    # claimed (still pending, nothing logged), and all the rest are passed on in order
    claimed = sum(asked)
    assert asked[0] == FIRST_CLAIM and set(asked[1:]) <= {1} and claimed < len(slow)
    ran = run.outcomes["completed"]
    assert FIRST_CLAIM <= ran <= claimed and run.passed_on == slow[ran:]
    assert [executions_of(admin_engine, j) for j in slow] == [1] * ran + [0] * (6 - ran)
    for job_id in slow[claimed:]:
        assert _story(database, org_a, job_id) == ["enqueued test.record on queue default"]


def test_a_reaped_workers_late_batch_write_cannot_complete_a_job_twice(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    engine_settings: Settings,
    job_engine: JobEngine,
) -> None:
    job_id = _enqueue(database, org_a, "test.noop")
    slow = JobEngine(engine_settings, database, worker_id="slow-worker")
    try:
        [claimed] = slow._claim_many([job_id])
        # Let the lease run out (no heartbeat), then the reaper and another worker step in.
        with admin_engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :j"
                ),
                {"j": job_id},
            )
        assert sweeps.reap(database)
        assert job_engine.execute(job_id) is Outcome.COMPLETED
        late = BatchRun(outcomes={}, passed_on=[])
        slow._write_many([slow._complete(claimed, {"late": True})], late)
    finally:
        slow.stop()
    assert late.outcomes == {"abandoned": 1}
    with database.org_session(org_a) as session:
        job = service.get_job(session, job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 2, None)
    assert _story(database, org_a, job_id).count("completed") == 1
