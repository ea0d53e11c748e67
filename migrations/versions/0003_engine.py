"""job engine

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

The job engine's narrow cross-org paths, each a SECURITY DEFINER function owned by the
BYPASSRLS system role and callable only by the application role:

- ``job_claim(id, worker, lease)``: a worker claims the job named by a message. One
  conditional UPDATE (pending and due → claimed and running, lease set, attempt counted); no
  row back means a duplicate or early delivery, which the worker acknowledges and ignores.
- ``job_heartbeat(worker, ids, lease)``: renews the leases a worker still holds and tells it
  which of its jobs were asked to cancel.
- ``jobs_reap(limit)``: expired leases go back to pending (or fail after max_attempts, or
  become cancelled when cancel was requested), in batches, SKIP LOCKED.
- ``jobs_dispatch_due(limit, stale_seconds)``: due pending jobs whose message is missing or
  stale, round-robin across orgs (each org's n-th job before anyone's n+1-th), marked
  dispatched; SKIP LOCKED, so concurrent sweeps never hand out the same row.

Every transition writes a job_logs row (clock_timestamp, so a job's story sorts in order).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CLAIM = "job_claim(uuid, text, integer)"
HEARTBEAT = "job_heartbeat(text, uuid[], integer)"
REAP = "jobs_reap(integer)"
DISPATCH = "jobs_dispatch_due(integer, integer)"

FUNCTIONS = {
    CLAIM: """
CREATE FUNCTION job_claim(p_job_id uuid, p_worker text, p_lease_seconds integer)
RETURNS SETOF jobs LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE v jobs;
BEGIN
    UPDATE jobs
       SET status = 'running', locked_by = p_worker, claimed_at = now(), started_at = now(),
           lease_expires_at = now() + make_interval(secs => p_lease_seconds),
           attempts = attempts + 1, updated_at = now()
     WHERE id = p_job_id AND status = 'pending' AND scheduled_at <= now()
       AND NOT cancel_requested
    RETURNING * INTO v;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
    VALUES (gen_random_uuid(), v.org_id, v.id, 'info', 'claimed by ' || p_worker,
            jsonb_build_object('status', 'claimed', 'worker', p_worker),
            clock_timestamp(), clock_timestamp()),
           (gen_random_uuid(), v.org_id, v.id, 'info',
            format('running: attempt %s of %s', v.attempts, v.max_attempts),
            jsonb_build_object('status', 'running', 'attempt', v.attempts),
            clock_timestamp(), clock_timestamp());
    RETURN NEXT v;
END $$;
""",
    HEARTBEAT: """
CREATE FUNCTION job_heartbeat(p_worker text, p_ids uuid[], p_lease_seconds integer)
RETURNS TABLE (id uuid, cancel_requested boolean)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE jobs j
       SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
     WHERE j.id = ANY (p_ids) AND j.locked_by = p_worker AND j.status IN ('claimed', 'running')
    RETURNING j.id, j.cancel_requested;
$$;
""",
    REAP: """
CREATE FUNCTION jobs_reap(p_limit integer)
RETURNS TABLE (id uuid, queue text, status text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH expired AS (
        SELECT e.id FROM jobs e
         WHERE e.status IN ('claimed', 'running') AND e.lease_expires_at < now()
         ORDER BY e.lease_expires_at
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE jobs j
           SET status = (CASE WHEN j.cancel_requested THEN 'cancelled'
                              WHEN j.attempts >= j.max_attempts THEN 'failed'
                              ELSE 'pending' END)::job_status,
               last_error = CASE WHEN j.cancel_requested THEN j.last_error
                                 ELSE format('worker %s stopped renewing its lease '
                                             '(attempt %s of %s)',
                                             j.locked_by, j.attempts, j.max_attempts) END,
               finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts
                                  THEN now() END,
               scheduled_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts
                                   THEN j.scheduled_at ELSE now() END,
               -- rescued jobs are published by the caller right after this commits
               dispatched_at = now(),
               locked_by = NULL, lease_expires_at = NULL, updated_at = now()
          FROM expired
         WHERE j.id = expired.id
        RETURNING j.id, j.org_id, j.queue, j.status, j.last_error
    ), logged AS (
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        SELECT gen_random_uuid(), m.org_id, m.id,
               (CASE WHEN m.status = 'pending' THEN 'warning' ELSE 'error' END)::log_level,
               CASE m.status
                   WHEN 'pending' THEN 'lease expired; back to pending: ' || m.last_error
                   WHEN 'failed' THEN 'lease expired; failed for good: ' || m.last_error
                   ELSE 'lease expired after cancel was requested; cancelled' END,
               jsonb_build_object('status', m.status::text, 'by', 'reaper'),
               clock_timestamp(), clock_timestamp()
          FROM moved m
    )
    SELECT m.id, m.queue::text, m.status::text FROM moved m;
$$;
""",
    DISPATCH: """
CREATE FUNCTION jobs_dispatch_due(p_limit integer, p_stale_seconds integer)
RETURNS TABLE (id uuid, queue text, org_rank bigint, priority integer)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH ranked AS (
        -- rank among all the org's due jobs on the queue, published or not, so a backlog
        -- keeps its place behind other orgs' first jobs from one batch to the next
        SELECT c.id, row_number() OVER (
                   PARTITION BY c.org_id, c.queue ORDER BY c.priority DESC, c.scheduled_at
               ) AS org_rank,
               (c.dispatched_at IS NULL
                OR c.dispatched_at < now() - make_interval(secs => p_stale_seconds)) AS stale
          FROM jobs c
         WHERE c.status = 'pending' AND c.scheduled_at <= now()
    ), pick AS (
        -- LIMIT after SKIP LOCKED: rows another sweep holds do not shrink this batch; the
        -- conditions are checked again on the locked row in case that sweep just took it
        SELECT j.id, r.org_rank FROM jobs j
          JOIN ranked r ON r.id = j.id
         WHERE r.stale AND j.status = 'pending'
           AND (j.dispatched_at IS NULL
                OR j.dispatched_at < now() - make_interval(secs => p_stale_seconds))
         ORDER BY r.org_rank
         LIMIT p_limit
           FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs j SET dispatched_at = now()
      FROM pick
     WHERE j.id = pick.id
    RETURNING j.id, j.queue::text, pick.org_rank, j.priority::integer;
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
    op.create_index(
        "ix_jobs_org_pending",
        "jobs",
        ["org_id", "queue"],
        unique=False,
        postgresql_where="status = 'pending'",
    )
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        for statement in system_function_owner(signature):
            op.execute(statement)


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.drop_index("ix_jobs_org_pending", table_name="jobs", postgresql_where="status = 'pending'")
