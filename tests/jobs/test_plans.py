"""The engine's functions find their jobs by primary key, whatever the queue holds.

A claim, a finish or a heartbeat names its jobs by id. Each of them reads the primary key
only, never the whole table nor a partial index of pending or active jobs (``ix_jobs_due_pending``,
``ix_jobs_org_pending``, ``ix_jobs_active_lease``): those grow with the backlog and with the
dead entries of jobs that have moved on, so scanning one would make every statement cost in
proportion to the queue (migration 0030). Read from Postgres' own counters of the
transaction (``pg_stat_get_xact_tuples_returned``), with generic plans forced, as a worker's
long-lived connection ends up using.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text

from fusion.db.session import Database
from fusion.jobs import service
from fusion.jobs.service import JobSpec

pytestmark = pytest.mark.usefixtures("executions")

BACKLOG = 300
SEQUENTIAL = "jobs, read whole"
AVOIDED = ("ix_jobs_due_pending", "ix_jobs_org_pending", "ix_jobs_active_lease", SEQUENTIAL)
# Index entries each index of jobs returned so far in this transaction, and how many times
# the table was read whole.
READS = text(
    "SELECT c.relname, pg_stat_get_xact_tuples_returned(c.oid) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'jobs'::regclass"
    f" UNION ALL SELECT '{SEQUENTIAL}', pg_stat_get_xact_numscans('jobs'::regclass)"
)


def _outcomes(ids: list[uuid.UUID]) -> str:
    return json.dumps(
        [
            {"id": str(i), "attempt": 1, "status": "completed", "set_result": False,
             "finished_at": "2026-12-04T00:00:00+00:00", "refund": 0, "redispatched": False,
             "level": "info", "message": "completed", "data": {}}
            for i in ids
        ]
    )  # fmt: skip


def test_claims_finishes_and_heartbeats_read_the_primary_key_not_the_backlog(
    database: Database, org_a: uuid.UUID
) -> None:
    # Given an org with a backlog of pending jobs
    with database.org_session(org_a) as session:
        specs = [JobSpec("test.noop")] * BACKLOG
        ids = [job.id for job in service.enqueue_many(session, org_id=org_a, specs=specs)]
    worker, first, many = "plans-worker", ids[0], ids[1:5]
    calls: list[tuple[str, Callable[[Connection], int]]] = [
        ("job_claim", lambda c: len(c.execute(
            text("SELECT id FROM job_claim(:id, :w, 30)"), {"id": first, "w": worker}).all())),
        ("job_claim_many", lambda c: len(c.execute(
            text("SELECT id FROM job_claim_many(CAST(:ids AS uuid[]), :w, 30)"),
            {"ids": many, "w": worker}).all())),
        ("job_heartbeat", lambda c: len(c.execute(
            text("SELECT id FROM job_heartbeat(:w, CAST(:ids AS uuid[]), 30)"),
            {"ids": [first, *many], "w": worker}).all())),
        ("job_finish_many", lambda c: len(c.execute(
            text("SELECT id FROM job_finish_many(:w, CAST(:o AS jsonb))"),
            {"o": _outcomes([first, *many]), "w": worker}).all())),
    ]  # fmt: skip
    scanned: dict[str, dict[str, int]] = {}
    rows: dict[str, int] = {}
    with database.engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        # When a worker claims one job, then four, renews their leases and finishes them
        for name, call in calls:
            before = dict(conn.execute(READS).all())
            rows[name] = call(conn)
            after = dict(conn.execute(READS).all())
            scanned[name] = {
                i: after[i] - before.get(i, 0) for i in after if after[i] != before.get(i, 0)
            }
    # Then each did its work on its own jobs
    assert rows == {"job_claim": 1, "job_claim_many": 4, "job_heartbeat": 5, "job_finish_many": 5}
    # and read no entry of a partial index and never the whole table, whatever the backlog
    assert {n: {i: k for i, k in s.items() if i in AVOIDED} for n, s in scanned.items()} == {
        name: {} for name, _ in calls
    }, scanned
