"""``JobContext.progress``: a long job may report every item, and the row is written at most
once a second (the first and the last report always), only while this worker runs the job."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import context
from fusion.jobs.context import JobContext

WORKER = "worker-progress-test"


def _running_job(engine: Engine, org: uuid.UUID, worker: str = WORKER) -> uuid.UUID:
    job_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, org_id, job_type, queue, status, locked_by) "
                "VALUES (:id, :org, 'sync_inventory', 'default', 'running', :worker)"
            ),
            {"id": job_id, "org": org, "worker": worker},
        )
    return job_id


def _stored(engine: Engine, job_id: uuid.UUID) -> object:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT progress FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()


def _context(job_id: uuid.UUID, org: uuid.UUID, settings: Settings, db: Database) -> JobContext:
    return JobContext(
        job_id=job_id,
        org_id=org,
        store_id=None,
        job_type="sync_inventory",
        payload={},
        attempt=1,
        max_attempts=5,
        settings=settings,
        database=db,
        worker_id=WORKER,
    )


def test_progress_is_written_first_and_last_and_at_most_once_a_second_between(
    admin_engine: Engine,
    database: Database,
    settings: Settings,
    org_a: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = _running_job(admin_engine, org_a)
    ctx = _context(job_id, org_a, settings, database)
    clock = [1000.0]
    monkeypatch.setattr(context.time, "monotonic", lambda: clock[0])
    # A handler reporting each of 1,000 items within the same second: the first is written,
    # the next 998 are not
    for done in range(1, 1000):
        ctx.progress(done, 1000)
    assert _stored(admin_engine, job_id) == {"done": 1, "total": 1000}
    # A second later the next report is written
    clock[0] += context.PROGRESS_EVERY_S
    ctx.progress(999, 1000)
    assert _stored(admin_engine, job_id) == {"done": 999, "total": 1000}
    # The last one always, however soon
    ctx.progress(1000, 1000)
    assert _stored(admin_engine, job_id) == {"done": 1000, "total": 1000}
    with pytest.raises(ValueError, match="negative"):
        ctx.progress(-1, 10)


def test_progress_of_a_job_this_worker_no_longer_holds_is_not_written(
    admin_engine: Engine, database: Database, settings: Settings, org_a: uuid.UUID
) -> None:
    job_id = _running_job(admin_engine, org_a, worker="another-worker")
    _context(job_id, org_a, settings, database).progress(5, 10)
    assert _stored(admin_engine, job_id) is None
