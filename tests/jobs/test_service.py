"""Enqueue, cancel and re-run, in the caller's transaction, against the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, text

from fusion.db.session import Database
from fusion.errors import Conflict, NotFound, ValidationFailed
from fusion.jobs import service
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.jobs.lanes import BULK_BACKLOG, Lane
from fusion.jobs.models import JobStatus
from fusion.jobs.service import JobSpec
from tests.jobs.conftest import RecordingDispatcher, executions_of

pytestmark = pytest.mark.usefixtures("executions")


def _count(admin_engine: Engine, sql: str, **params: object) -> int:
    with admin_engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def test_the_message_is_published_only_after_the_commit(
    database: Database, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.noop")
        assert recorder.published == []  # still inside the transaction
    assert recorder.published == [(job.id, "default", Lane.NORMAL)]


def test_a_rolled_back_enqueue_stores_and_publishes_nothing(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with pytest.raises(RuntimeError), database.org_session(org_a) as session:
        service.enqueue(session, org_id=org_a, job_type="test.noop")
        raise RuntimeError("the business change failed")
    assert _count(admin_engine, "SELECT count(*) FROM jobs") == 0
    assert recorder.published == []


def test_an_idempotency_key_reused_returns_the_first_job(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        first = service.enqueue(session, org_id=org_a, job_type="test.noop", idempotency_key="k1")
    with database.org_session(org_a) as session:
        again = service.enqueue(
            session, org_id=org_a, job_type="test.noop", idempotency_key="k1", priority=5
        )
    assert again.id == first.id
    assert again.priority == 0
    assert _count(admin_engine, "SELECT count(*) FROM jobs") == 1
    assert recorder.ids == [first.id]  # the repeat published nothing


def test_the_same_key_in_another_org_is_another_job(
    database: Database, org_a: uuid.UUID, org_b: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        a = service.enqueue(session, org_id=org_a, job_type="test.noop", idempotency_key="k")
    with database.org_session(org_b) as session:
        b = service.enqueue(session, org_id=org_b, job_type="test.noop", idempotency_key="k")
    assert a.id != b.id


def test_a_payload_that_fails_its_schema_is_refused_with_field_errors_and_not_stored(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with pytest.raises(ValidationFailed) as caught, database.org_session(org_a) as session:
        service.enqueue(
            session, org_id=org_a, job_type="test.schema", payload={"sku": "", "extra": 1}
        )
    assert set(caught.value.fields) == {
        "payload.sku",
        "payload.quantity",
        "payload.extra",
    }
    assert _count(admin_engine, "SELECT count(*) FROM jobs") == 0
    assert recorder.published == []


def test_a_valid_payload_is_stored_as_the_schema_cleaned_it(
    database: Database, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        job = service.enqueue(
            session, org_id=org_a, job_type="test.schema", payload={"sku": "A-1", "quantity": "3"}
        )
    assert job.payload == {"sku": "A-1", "quantity": 3}


def test_unknown_job_types_and_missing_stores_are_refused(
    database: Database, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with pytest.raises(ValidationFailed) as unknown, database.org_session(org_a) as session:
        service.enqueue(session, org_id=org_a, job_type="no.such.type")
    assert "job_type" in unknown.value.fields
    with pytest.raises(ValidationFailed) as storeless, database.org_session(org_a) as session:
        service.enqueue(session, org_id=org_a, job_type="test.store")
    assert "store_id" in storeless.value.fields
    with pytest.raises(NotFound), database.org_session(org_a) as session:
        service.enqueue(session, org_id=org_a, job_type="test.store", store_id=uuid.uuid4())


def test_enqueue_many_inserts_every_job_and_its_log_line_with_one_statement(
    database: Database, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    inserts: list[str] = []
    enqueue = service._INSERT  # a prepared statement (fusion.db.prepared)

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith(f"EXECUTE {enqueue.name}("):
            inserts.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        with database.org_session(org_a) as session:
            jobs = service.enqueue_many(
                session,
                org_id=org_a,
                specs=[JobSpec("test.noop", payload={"n": i}) for i in range(300)],
            )
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert len(inserts) == 1 and "INSERT INTO job_logs" in enqueue.definition
    assert [j.payload["n"] for j in jobs] == list(range(300))
    with database.org_session(org_a) as session:
        lines = [service.job_logs(session, j.id) for j in jobs]
    assert [[e.message for e in log] for log in lines] == [
        ["enqueued test.noop on queue default"]
    ] * 300
    # A batch this size is a backlog: it rides in the bulk lane.
    assert {lane for _, _, lane in recorder.published} == {Lane.BULK}
    assert len(recorder.published) == 300


def test_a_big_backlog_goes_to_the_bulk_lane_and_urgent_jobs_pass_it(
    database: Database, org_a: uuid.UUID, org_b: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    # Given an org enqueueing one job after another in one transaction: each counts those
    # before it, so the job that makes the backlog and every later one ride in bulk
    with database.org_session(org_a) as session:
        first = [
            service.enqueue(session, org_id=org_a, job_type="test.noop").id
            for _ in range(BULK_BACKLOG)
        ]
    lanes = {job_id: lane for job_id, _, lane in recorder.published}
    assert [lanes[i] for i in first] == [Lane.NORMAL] * (BULK_BACKLOG - 1) + [Lane.BULK]
    # When it enqueues more later, an urgent one among them, and another org one job
    with database.org_session(org_a) as session:
        late_a = service.enqueue(session, org_id=org_a, job_type="test.noop")
        urgent_a = service.enqueue(session, org_id=org_a, job_type="test.urgent")
    with database.org_session(org_b) as session:
        new_b = service.enqueue(session, org_id=org_b, job_type="test.noop")
    # Then the backlog's next job rides in bulk, the urgent one passes it, and the other
    # org's is not held behind it
    lanes = {job_id: lane for job_id, _, lane in recorder.published}
    assert lanes[late_a.id] == Lane.BULK
    assert lanes[urgent_a.id] == Lane.URGENT
    assert lanes[new_b.id] == Lane.NORMAL


def test_a_future_job_is_not_published_and_not_started_early(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    recorder: RecordingDispatcher,
    job_engine: JobEngine,
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.record", scheduled_at=later)
    assert recorder.published == []
    assert job_engine.execute(job.id) is Outcome.SKIPPED  # a stray message cannot start it
    assert executions_of(admin_engine, job.id) == 0
    with database.org_session(org_a) as session:
        assert service.get_job(session, job.id).status is JobStatus.PENDING


def test_a_cancelled_pending_job_never_runs(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    recorder: RecordingDispatcher,
    job_engine: JobEngine,
) -> None:
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.record")
    with database.org_session(org_a) as session:
        assert service.cancel(session, job.id).status is JobStatus.CANCELLED
    assert job_engine.execute(job.id) is Outcome.SKIPPED
    assert executions_of(admin_engine, job.id) == 0
    with database.org_session(org_a) as session:
        with pytest.raises(Conflict):
            service.cancel(session, job.id)
        messages = [e.message for e in service.job_logs(session, job.id)]
    assert messages == ["enqueued test.record on queue default", "cancelled before it ran"]


def test_a_failed_job_can_be_rerun_from_scratch(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    recorder: RecordingDispatcher,
    job_engine: JobEngine,
) -> None:
    with database.org_session(org_a) as session:
        job = service.enqueue(
            session, org_id=org_a, job_type="test.fail", payload={"error": "permanent"}
        )
    assert job_engine.execute(job.id) is Outcome.FAILED
    with database.org_session(org_a) as session:
        rerun = service.rerun(session, job.id)
        assert (rerun.status, rerun.attempts) == (JobStatus.PENDING, 0)
    assert recorder.ids == [job.id, job.id]  # published again after the commit
    with database.org_session(org_a) as session:
        with pytest.raises(Conflict):
            service.rerun(session, job.id)  # pending: nothing to re-run
        assert service.job_logs(session, job.id)[-1].message == "re-run requested (was failed)"


def test_another_orgs_job_is_not_found(
    database: Database, org_a: uuid.UUID, org_b: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.noop")
    with database.org_session(org_b) as session:
        for action in (service.get_job, service.cancel, service.rerun, service.job_logs):
            with pytest.raises(NotFound):
                action(session, job.id)
