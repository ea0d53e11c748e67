"""Group commit: the claims and outcomes of jobs a worker's threads run at once go to Postgres
together, and every guarantee of one job alone still holds."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, text

from fusion.db.session import Database
from fusion.jobs import service
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.jobs.group_commit import GroupCommit
from fusion.jobs.models import JobStatus
from fusion.jobs.service import JobSpec
from tests.support.gate import Gate, wait_until

# --- the batching itself (pure logic) ------------------------------------------------------


def _submit_all(gc: GroupCommit[int, int], items: list[int]) -> dict[int, int]:
    answers: dict[int, int] = {}
    threads = [
        threading.Thread(target=lambda i=i: answers.__setitem__(i, gc.submit(i))) for i in items
    ]
    for t in threads:
        t.start()
    return answers


def test_an_idle_writer_writes_at_once_and_arrivals_during_a_write_share_the_next() -> None:
    gate = Gate()
    gc: GroupCommit[int, int] = GroupCommit(gate.write)
    # Given a write in flight (its caller alone: nothing waited)
    first = _submit_all(gc, [1])
    wait_until(lambda: gate.batches == [[1]])
    # When three more arrive while it is in flight
    rest = _submit_all(gc, [2, 3, 4])
    wait_until(lambda: len(gc._waiting) == 3)
    assert gate.batches == [[1]]
    gate.release.set()
    wait_until(lambda: len(first) + len(rest) == 4)
    # Then they went together, in one write, and each got its own answer
    assert gate.batches[0] == [1]
    assert sorted(gate.batches[1]) == [2, 3, 4] and len(gate.batches) == 2
    assert {**first, **rest} == {1: 10, 2: 20, 3: 30, 4: 40}
    assert (gc.batches, gc.items) == (2, 4)


def test_a_failed_write_raises_in_every_caller_of_its_batch_and_the_next_batch_goes_on() -> None:
    calls: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise RuntimeError("connection lost")
        return list(items)

    gc: GroupCommit[int, int] = GroupCommit(write)
    with pytest.raises(RuntimeError, match="connection lost"):
        gc.submit(13)
    assert gc.submit(7) == 7  # the committer is not stuck after a failure
    assert calls == [[13], [7]]


# --- through the engine, against the real database ------------------------------------------


def _enqueue_many(database: Database, org: uuid.UUID, n: int) -> list[uuid.UUID]:
    with database.org_session(org) as session:
        jobs = service.enqueue_many(session, org_id=org, specs=[JobSpec("test.record")] * n)
        return [j.id for j in jobs]


def _run_at_once(job_engine: JobEngine, ids: list[uuid.UUID]) -> list[Outcome]:
    """Each id executed by its own thread, all released together (a worker's busy threads)."""
    start = threading.Barrier(len(ids))
    outcomes: list[Outcome] = []

    def run(job_id: uuid.UUID) -> None:
        start.wait()
        outcomes.append(job_engine.execute(job_id))

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


@pytest.mark.usefixtures("executions")
def test_jobs_run_at_once_share_claim_and_finish_statements_and_each_runs_and_logs_once(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    ids = _enqueue_many(database, org_a, 12)
    outcomes = _run_at_once(job_engine, ids)
    assert outcomes == [Outcome.COMPLETED] * 12
    # Fewer statements than jobs on both sides: the threads' claims and outcomes were grouped.
    assert job_engine.claims.items == 12 and job_engine.claims.batches < 12
    assert job_engine.finishes.items == 12 and job_engine.finishes.batches < 12
    with admin_engine.connect() as conn:
        ran = conn.execute(
            text("SELECT job_id, count(*) FROM test_executions GROUP BY job_id")
        ).all()
        stories = conn.execute(
            text(
                "SELECT job_id, array_agg(data->>'status' ORDER BY created_at) FROM job_logs "
                "WHERE job_id = ANY(:ids) GROUP BY job_id"
            ),
            {"ids": ids},
        ).all()
        statuses = conn.execute(
            text("SELECT DISTINCT status::text FROM jobs WHERE id = ANY(:ids)"), {"ids": ids}
        ).scalars()
        assert list(statuses) == [JobStatus.COMPLETED.value]
    assert sorted(n for _, n in ran) == [1] * 12 and {j for j, _ in ran} == set(ids)
    # Every transition of every job is in its log, in order, as for a job run alone.
    assert {j: list(s) for j, s in stories} == {j: ["pending", "running", "completed"] for j in ids}


@pytest.mark.usefixtures("executions")
def test_two_deliveries_of_one_job_in_one_claim_statement_claim_it_once(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    [job_id] = _enqueue_many(database, org_a, 1)
    first, duplicate = job_engine._claim_each([job_id, job_id])
    assert first is not None and first.id == job_id and first.attempt == 1
    assert duplicate is None
    with admin_engine.connect() as conn:
        claims = conn.execute(
            text("SELECT count(*) FROM job_logs WHERE job_id = :j AND data->>'status' = 'running'"),
            {"j": job_id},
        ).scalar()
    assert claims == 1


@pytest.mark.usefixtures("executions")
def test_a_grouped_outcome_of_an_attempt_this_worker_no_longer_holds_is_not_written(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, job_engine: JobEngine
) -> None:
    kept, taken = _enqueue_many(database, org_a, 2)
    claimed = job_engine._claim_each([kept, taken])
    assert all(c is not None for c in claimed)
    # The second job's lease was reaped and it now runs as attempt 2 elsewhere.
    with admin_engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET locked_by = 'other-worker', attempts = 2 WHERE id = :j"),
            {"j": taken},
        )
    finishes = [job_engine._complete(c, {"ok": True}) for c in claimed if c is not None]
    assert job_engine._write_outcomes(finishes) == [True, False]
    with admin_engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT id, status::text FROM jobs WHERE id = ANY(:ids)"),
                {"ids": [kept, taken]},
            ).all()
        )
    assert rows == {kept: "completed", taken: "running"}
