"""A job's log lines live as long as the job (migration 0031: a trigger, not a foreign key):
they go when it goes, by any delete or truncate, and a line is never written for a job that
is not there, also when its job is being deleted at the same moment."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import Engine, text

from fusion.db.session import Database
from fusion.jobs import log as joblog
from fusion.jobs import service


def _enqueue(database: Database, org: uuid.UUID, n: int = 2) -> list[uuid.UUID]:
    with database.org_session(org) as session:
        return [service.enqueue(session, org_id=org, job_type="test.noop").id for _ in range(n)]


def _lines(admin_engine: Engine, org: uuid.UUID) -> int:
    with admin_engine.connect() as conn:
        sql = "SELECT count(*) FROM job_logs WHERE org_id = :o"
        return int(conn.execute(text(sql), {"o": org}).scalar_one())


def test_an_orgs_deletion_takes_its_jobs_lines_and_leaves_the_other_orgs(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, org_b: uuid.UUID
) -> None:
    _enqueue(database, org_a)
    _enqueue(database, org_b)
    kept = _lines(admin_engine, org_b)
    assert _lines(admin_engine, org_a) == 2 and kept == 2
    # When org A is deleted (orgs → jobs cascades; the cascade is a statement of its own)
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM orgs WHERE id = :o"), {"o": org_a})
    # Then A's jobs' lines went with them, and B's stayed
    assert _lines(admin_engine, org_a) == 0
    assert _lines(admin_engine, org_b) == kept


def test_truncating_jobs_truncates_their_lines(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    _enqueue(database, org_a)
    with admin_engine.begin() as conn:
        conn.execute(text("TRUNCATE jobs CASCADE"))
    assert _lines(admin_engine, org_a) == 0


def test_no_line_is_written_for_a_deleted_job_or_another_orgs(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, org_b: uuid.UUID
) -> None:
    gone, kept = _enqueue(database, org_a)
    [theirs] = _enqueue(database, org_b, 1)
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE id = :j"), {"j": gone})
    with database.org_session(org_a) as session:
        joblog.write(session, org_a, gone, "after its deletion")
        joblog.write(session, org_a, theirs, "into another org's job")
        joblog.write(session, org_b, theirs, "naming the other org")
        joblog.write(session, org_a, kept, "a line of note")
    with admin_engine.connect() as conn:
        rows = conn.execute(text("SELECT job_id, message FROM job_logs ORDER BY created_at"))
        lines = [(r.job_id, r.message) for r in rows]
    assert (kept, "a line of note") in lines
    assert all(job_id != gone for job_id, _ in lines)
    assert [m for j, m in lines if j == theirs] == ["enqueued test.noop on queue default"]


def test_a_line_written_while_its_job_is_being_deleted_waits_and_then_writes_nothing(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    [job] = _enqueue(database, org_a, 1)
    wrote = threading.Event()

    def write() -> None:
        with database.org_session(org_a) as session:
            joblog.write(session, org_a, job, "while it goes")
        wrote.set()

    # Given a transaction that has deleted the job and not yet committed
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE id = :j"), {"j": job})
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)
        # Then the line waits for the delete (the row's share lock), as a foreign key made it
        assert not wrote.is_set()
    writer.join(timeout=10)
    # and once the delete commits it writes nothing: no line outlives its job
    assert wrote.is_set()
    assert _lines(admin_engine, org_a) == 0
