"""Write-behind: a worker's thread hands its job's outcome to one writer thread and goes on;
the writer batches what arrives during a write, and nothing handed over is lost by a graceful
stop."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import service
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.jobs.models import JobStatus
from fusion.jobs.write_behind import WriteBehind
from tests.support.gate import Gate, wait_until

# --- the writer itself (pure logic) ----------------------------------------------------------


def test_put_returns_at_once_and_what_arrives_during_a_write_goes_in_the_next_in_order() -> None:
    gate = Gate()
    writer: WriteBehind[int, int] = WriteBehind(gate.write, name="test-writer")
    # Given a write in flight that cannot finish yet
    writer.put(1)
    wait_until(lambda: gate.batches == [[1]])
    # When three more are handed over meanwhile, each put returns without waiting for it
    for i in (2, 3, 4):
        writer.put(i)
    assert writer.pending() == 4 and gate.batches == [[1]]
    gate.release.set()
    # Then they are written together in the next statement, in the order handed over
    assert writer.flush(5)
    assert gate.batches == [[1], [2, 3, 4]]
    assert (writer.batches, writer.items, writer.pending()) == (2, 4, 0)
    assert writer.stop(5)


def test_put_and_wait_answers_its_own_item_and_a_failed_write_raises_in_its_batch_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def write(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("connection lost; parameters: token=s3cr3t")
        return [-i for i in items]

    writer: WriteBehind[int, int] = WriteBehind(write, name="test-writer")
    assert writer.put_and_wait(7) == -7
    with pytest.raises(RuntimeError, match="connection lost"):
        writer.put_and_wait(13)
    # The log names the failure's type, never its text (a statement's parameters)
    assert "a write of 1 item(s) failed: RuntimeError" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert writer.put_and_wait(8) == -8  # the writer is not stuck after a failure
    assert writer.stop(5)


def test_a_write_that_answers_the_wrong_number_of_items_is_an_error_not_a_guess() -> None:
    writer: WriteBehind[int, int] = WriteBehind(lambda items: [], name="test-writer")
    with pytest.raises(RuntimeError, match="0 answers for 1 items"):
        writer.put_and_wait(1)
    assert writer.stop(5)


def test_flush_gives_up_after_its_timeout_and_stop_still_writes_everything_handed_over() -> None:
    gate = Gate()
    writer: WriteBehind[int, int] = WriteBehind(gate.write, name="test-writer")
    for i in range(5):
        writer.put(i)
    assert writer.flush(0.2) is False  # the database is slow: flush says so, loses nothing
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(writer.stop(10)))
    stopper.start()
    time.sleep(0.1)
    assert stopped == []  # stop waits for the writes
    gate.release.set()
    stopper.join(10)
    assert stopped == [True]
    assert sorted(i for batch in gate.batches for i in batch) == [0, 1, 2, 3, 4]
    assert writer.pending() == 0


def test_a_full_backlog_makes_put_wait_for_room() -> None:
    gate = Gate()
    writer: WriteBehind[int, int] = WriteBehind(gate.write, name="test-writer", backlog=2)
    writer.put(0)
    wait_until(lambda: gate.batches == [[0]])  # in flight: no longer in the backlog
    writer.put(1)
    writer.put(2)
    blocked = threading.Thread(target=writer.put, args=(3,))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # two waiting already: the third waits for room
    gate.release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    assert writer.stop(5)
    assert [i for batch in gate.batches for i in batch] == [0, 1, 2, 3]


# --- through the engine, against the real database ------------------------------------------


@pytest.fixture
def behind(engine_settings: Settings, database: Database) -> Iterator[JobEngine]:
    """The engine as a worker builds it: outcomes written behind."""
    engine = JobEngine(engine_settings, database, db_patience_s=5, write_behind=True)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _row(admin_engine: Engine, job_id: uuid.UUID) -> tuple[str, int, str | None]:
    with admin_engine.connect() as conn:
        status, attempts, locked_by = conn.execute(
            text("SELECT status::text, attempts, locked_by FROM jobs WHERE id = :j"),
            {"j": job_id},
        ).one()
    return status, attempts, locked_by


def _story(admin_engine: Engine, job_id: uuid.UUID) -> list[str]:
    with admin_engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT data->>'status' FROM job_logs WHERE job_id = :j ORDER BY created_at, id"
                ),
                {"j": job_id},
            ).scalars()
        )


@pytest.mark.usefixtures("executions")
def test_a_thread_returns_before_its_outcome_is_written_and_the_job_runs_under_lease_till_then(
    behind: JobEngine, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    with database.org_session(org_a) as session:
        # (long enough for the row to be locked once claimed; no checkpoint writes to it)
        job = service.enqueue(session, org_id=org_a, job_type="test.record",
                              payload={"sleep_s": 0.5, "checkpoints": False})  # fmt: skip
    # Given another transaction that will hold the job's row, so no finish can be written
    blocker = admin_engine.connect()
    tx = blocker.begin()
    done: list[Outcome] = []
    runner = threading.Thread(target=lambda: done.append(behind.execute(job.id)))
    try:
        runner.start()
        # (the claim must get through first: the row is locked once the job is running)
        wait_until(lambda: _row(admin_engine, job.id)[0] == "running", 10)
        blocker.execute(text("SELECT 1 FROM jobs WHERE id = :j FOR UPDATE"), {"j": job.id})
        # When the handler has run
        runner.join(10)
        # Then execute returned its outcome while the write still waits, the job still
        # running in the database, its lease still renewed by this worker
        assert done == [Outcome.COMPLETED]
        assert behind.finishes.pending() == 1
        assert behind.finishes.flush(0.3) is False
        assert _row(admin_engine, job.id) == ("running", 1, behind.worker_id)
        assert job.id in behind.leases._jobs
    finally:
        tx.rollback()
        blocker.close()
    # And once the row is free the writer writes it: completed once, every transition logged
    assert behind.finishes.flush(10)
    assert _row(admin_engine, job.id)[:2] == ("completed", 1)
    assert job.id not in behind.leases._jobs
    assert _story(admin_engine, job.id) == ["pending", "running", "completed"]


@pytest.mark.usefixtures("executions")
def test_stopping_the_engine_writes_the_outcomes_handed_over(
    behind: JobEngine, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    with database.org_session(org_a) as session:
        jobs = [service.enqueue(session, org_id=org_a, job_type="test.record") for _ in range(5)]
    outcomes = [behind.execute(j.id) for j in jobs]
    assert outcomes == [Outcome.COMPLETED] * 5
    behind.stop()
    assert {_row(admin_engine, j.id)[0] for j in jobs} == {JobStatus.COMPLETED.value}
    assert behind.finishes.items == 5
