"""job engine: the claim, finish and heartbeat find their jobs by primary key

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04

Each of ``job_claim``, ``job_claim_many``, ``job_finish_many`` and ``job_heartbeat`` names
its jobs by id and also checks their status (``status = 'pending'``, ``'running'``,
``IN ('claimed', 'running')``). That status condition matches the predicate of a partial
index (``ix_jobs_due_pending``, ``ix_jobs_org_pending``, ``ix_jobs_active_lease``). Between
two ANALYZEs those indexes look tiny to the planner, so the cached generic plans scanned a
whole partial index and filtered it by id instead of looking the id up. Under a backlog the
claim read every pending job (about 950 to 2,750 rows per claim in bench/engine_profile.py
with auto_explain), and the finish read every claimed or running job and their dead index
entries (4,381 entries for 7 rows), so each statement cost in proportion to the queue, not
to its jobs.

Here the status is compared as text (``status::text``). That condition implies no partial
index's predicate, so the one index left that can serve the statement is the primary key,
and ``job_finish_many`` looks its outcomes' ids up there (``id = ANY`` of them). Each
function also runs with ``enable_seqscan = off``: a plan made while ``jobs`` was small (a
new database, the first jobs) would otherwise scan the whole table, and a connection keeps
its plan until the next ANALYZE (auto_explain showed 60 of 162 finishes doing so, at 2.2 ms
each). The conditions, locks, log rows and results are the same as in 0029.
"""

from __future__ import annotations

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

CLAIMED = """
        UPDATE jobs j
           SET status = 'running', locked_by = p_worker, claimed_at = now(), started_at = now(),
               lease_expires_at = now() + make_interval(secs => p_lease_seconds),
               attempts = j.attempts + 1, updated_at = now()"""
LOGGED = """
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        SELECT gen_random_uuid(), c.org_id, c.id, 'info',
               format('running: attempt %s of %s, claimed by %s', c.attempts, c.max_attempts,
                      p_worker),
               jsonb_build_object('status', 'running', 'attempt', c.attempts, 'worker', p_worker),
               clock_timestamp(), clock_timestamp()
          FROM claimed c"""
# {status}: how each statement names the job's status, as 0029 did ("status") and as this
# revision does ("status::text"), so that both are written from one text.
FUNCTIONS = {
    "job_claim(p_job_id uuid, p_worker text, p_lease_seconds integer) RETURNS SETOF jobs": f"""
    WITH claimed AS ({CLAIMED}
         WHERE j.id = p_job_id AND j.{{status}} = 'pending' AND j.scheduled_at <= now()
           AND NOT j.cancel_requested
        RETURNING j.*
    ), logged AS ({LOGGED}
    )
    SELECT * FROM claimed""",
    "job_claim_many(p_ids uuid[], p_worker text, p_lease_seconds integer) RETURNS SETOF jobs": f"""
    WITH pick AS (
        SELECT c.id FROM jobs c
         WHERE c.id = ANY (p_ids) AND c.{{status}} = 'pending' AND c.scheduled_at <= now()
           AND NOT c.cancel_requested
         ORDER BY c.id
           FOR UPDATE SKIP LOCKED
    ), claimed AS ({CLAIMED}
          FROM pick
         WHERE j.id = pick.id
        RETURNING j.*
    ), logged AS ({LOGGED}
    )
    SELECT * FROM claimed""",
    "job_finish_many(p_worker text, p_outcomes jsonb) RETURNS TABLE (id uuid)": """
    WITH o AS (
        SELECT * FROM jsonb_to_recordset(p_outcomes) AS x(
            id uuid, attempt integer, status text, set_result boolean, result jsonb,
            error text, scheduled_at timestamptz, redispatched boolean,
            finished_at timestamptz, refund integer, level text, message text, data jsonb)
    ), moved AS (
        UPDATE jobs j
           SET status = o.status::job_status,
               result = CASE WHEN o.set_result THEN NULLIF(o.result, 'null'::jsonb)
                             ELSE j.result END,
               last_error = COALESCE(o.error, j.last_error),
               scheduled_at = COALESCE(o.scheduled_at, j.scheduled_at),
               -- rescheduled: its message is due again (NULL), unless the caller publishes
               -- it right away (redispatched)
               dispatched_at = CASE WHEN o.redispatched THEN now()
                                    WHEN o.scheduled_at IS NOT NULL THEN NULL
                                    ELSE j.dispatched_at END,
               finished_at = o.finished_at,
               attempts = j.attempts - o.refund,
               locked_by = NULL, lease_expires_at = NULL, updated_at = now()
          FROM o
         WHERE j.id = o.id {by_key}AND j.{status} = 'running' AND j.locked_by = p_worker
           AND j.attempts = o.attempt
        RETURNING j.id, j.org_id, o.level, o.message, o.data
    ), logged AS (
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        SELECT gen_random_uuid(), m.org_id, m.id, m.level::log_level, m.message, m.data,
               clock_timestamp(), clock_timestamp()
          FROM moved m
    )
    SELECT m.id FROM moved m""",
    "job_heartbeat(p_worker text, p_ids uuid[], p_lease_seconds integer)"
    " RETURNS TABLE (id uuid, cancel_requested boolean)": """
    WITH renewed AS (
        UPDATE jobs j
           SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
         WHERE j.id = ANY (p_ids) AND j.locked_by = p_worker
           AND j.{status} IN ('claimed', 'running')
        RETURNING j.id, j.cancel_requested
    )
    SELECT r.id, r.cancel_requested FROM renewed r""",
}
BY_KEY = "AND j.id = ANY (ARRAY(SELECT k.id FROM o k))\n           "


def _create(status: str, by_key: str, settings: str) -> None:
    # CREATE OR REPLACE keeps each function's owner (the system role) and grants.
    for signature, statement in FUNCTIONS.items():
        body = statement.format(status=status, by_key=by_key)
        op.execute(
            f"CREATE OR REPLACE FUNCTION {signature}\n"
            f"LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp{settings} AS $$\n"
            f"#variable_conflict use_column\nBEGIN\n    RETURN QUERY{body};\nEND $$"
        )


def upgrade() -> None:
    _create("status::text", BY_KEY, " SET enable_seqscan = off")


def downgrade() -> None:
    _create("status", "", "")
