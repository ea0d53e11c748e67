"""job engine: claims and outcomes in batches

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Two SECURITY DEFINER functions (owned by the system role, callable by the application role
only) that let a bulk message (``fusion.run_jobs``, several ids) cost one round trip to claim
and, usually, one to record its outcomes, instead of two per job:

- ``job_claim_many(ids, worker, lease)``: the conditions of ``job_claim`` (pending, due, no
  cancel requested) applied to every id at once, rows locked SKIP LOCKED so a concurrent
  claimer of the same id gets nothing, and the same two job_logs rows per claimed job
  (claimed, running). Ids not claimable are simply not returned.
- ``job_finish_many(worker, outcomes)``: records several outcomes (a jsonb array, one object
  per job) with the same (worker, attempt) guard as the single finish: a job this worker no
  longer holds in that attempt is not touched and not returned. One job_logs row per move.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CLAIM_MANY = "job_claim_many(uuid[], text, integer)"
FINISH_MANY = "job_finish_many(text, jsonb)"

FUNCTIONS = {
    CLAIM_MANY: """
CREATE FUNCTION job_claim_many(p_ids uuid[], p_worker text, p_lease_seconds integer)
RETURNS SETOF jobs LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE v jobs;
BEGIN
    -- A loop (not one INSERT ... SELECT) so each job's two log rows get increasing
    -- clock_timestamp()s in claimed → running order, as job_claim writes them.
    FOR v IN
        WITH pick AS (
            SELECT c.id FROM jobs c
             WHERE c.id = ANY (p_ids) AND c.status = 'pending' AND c.scheduled_at <= now()
               AND NOT c.cancel_requested
             ORDER BY c.id
               FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs j
           SET status = 'running', locked_by = p_worker, claimed_at = now(), started_at = now(),
               lease_expires_at = now() + make_interval(secs => p_lease_seconds),
               attempts = j.attempts + 1, updated_at = now()
          FROM pick
         WHERE j.id = pick.id
        RETURNING j.*
    LOOP
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        VALUES (gen_random_uuid(), v.org_id, v.id, 'info', 'claimed by ' || p_worker,
                jsonb_build_object('status', 'claimed', 'worker', p_worker),
                clock_timestamp(), clock_timestamp()),
               (gen_random_uuid(), v.org_id, v.id, 'info',
                format('running: attempt %s of %s', v.attempts, v.max_attempts),
                jsonb_build_object('status', 'running', 'attempt', v.attempts),
                clock_timestamp(), clock_timestamp());
        RETURN NEXT v;
    END LOOP;
END $$;
""",
    FINISH_MANY: """
CREATE FUNCTION job_finish_many(p_worker text, p_outcomes jsonb)
RETURNS TABLE (id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
         WHERE j.id = o.id AND j.status = 'running' AND j.locked_by = p_worker
           AND j.attempts = o.attempt
        RETURNING j.id, j.org_id, o.level, o.message, o.data
    ), logged AS (
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        SELECT gen_random_uuid(), m.org_id, m.id, m.level::log_level, m.message, m.data,
               clock_timestamp(), clock_timestamp()
          FROM moved m
    )
    SELECT m.id FROM moved m;
$$;
""",
}


def system_function_owner(signature: str) -> list[str]:
    """``signature`` becomes a narrow system path: owned by the BYPASSRLS system role,
    callable by the application role and nobody else (as of this revision: written out here,
    not imported from live code)."""
    return [
        f"ALTER FUNCTION {signature} OWNER TO fusion_system",
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO fusion_app",
    ]


def upgrade() -> None:
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        for statement in system_function_owner(signature):
            op.execute(statement)


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
