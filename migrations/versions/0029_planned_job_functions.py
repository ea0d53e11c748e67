"""job engine: the claim, finish and heartbeat functions keep their plans

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-04

``job_claim``, ``job_claim_many``, ``job_finish_many`` and ``job_heartbeat`` were
``LANGUAGE sql`` functions. SECURITY DEFINER (and the SET search_path) keeps Postgres from
inlining them, and a SQL function that is not inlined parses and plans its body again in
every statement that calls it: on a one-job message, the claim's planning (a CTE of an
UPDATE and an INSERT) was a fifth of Postgres' time per job. As ``LANGUAGE plpgsql`` with the
same statement under ``RETURN QUERY``, the plan is prepared once per database connection and
reused. Same statements, same conditions, locks, log rows and results: only the language
changes. (``#variable_conflict use_column``: in plpgsql the output column ``id`` of
``RETURNS TABLE`` is also a variable; the statements mean the table's column, as in SQL.)
"""

from __future__ import annotations

from alembic import op

revision = "0029"
down_revision = "0028"
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

# (signature and result, statement): each function's one statement, as revisions 0003, 0006
# and 0028 left it.
FUNCTIONS = {
    "job_claim(p_job_id uuid, p_worker text, p_lease_seconds integer) RETURNS SETOF jobs": f"""
    WITH claimed AS ({CLAIMED}
         WHERE j.id = p_job_id AND j.status = 'pending' AND j.scheduled_at <= now()
           AND NOT j.cancel_requested
        RETURNING j.*
    ), logged AS ({LOGGED}
    )
    SELECT * FROM claimed""",
    "job_claim_many(p_ids uuid[], p_worker text, p_lease_seconds integer) RETURNS SETOF jobs": f"""
    WITH pick AS (
        SELECT c.id FROM jobs c
         WHERE c.id = ANY (p_ids) AND c.status = 'pending' AND c.scheduled_at <= now()
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
         WHERE j.id = o.id AND j.status = 'running' AND j.locked_by = p_worker
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
           AND j.status IN ('claimed', 'running')
        RETURNING j.id, j.cancel_requested
    )
    SELECT r.id, r.cancel_requested FROM renewed r""",
}

HEAD = "CREATE OR REPLACE FUNCTION {signature}\n"
OPTIONS = "SECURITY DEFINER SET search_path = public, pg_temp"


def plpgsql(signature: str, statement: str) -> str:
    return (
        HEAD.format(signature=signature)
        + f"LANGUAGE plpgsql {OPTIONS} AS $$\n#variable_conflict use_column\nBEGIN\n"
        + f"    RETURN QUERY{statement};\nEND $$"
    )


def sql(signature: str, statement: str) -> str:
    return HEAD.format(signature=signature) + f"LANGUAGE sql {OPTIONS} AS $${statement};\n$$"


def upgrade() -> None:
    # CREATE OR REPLACE keeps each function's owner (the system role) and grants.
    for signature, statement in FUNCTIONS.items():
        op.execute(plpgsql(signature, statement))


def downgrade() -> None:
    for signature, statement in FUNCTIONS.items():
        op.execute(sql(signature, statement))
