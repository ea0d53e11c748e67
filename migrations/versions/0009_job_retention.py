"""jobs: retention of finished jobs

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

A job queue in Postgres stays fast only while its table stays small: every finished row is
dead weight for the claim path's indexes and for vacuum. ``prune_finished_jobs`` deletes, in
one batch of at most ``p_batch`` rows, the completed and cancelled jobs that finished before
``p_done_before`` and the failed ones that finished before ``p_failed_before`` (kept longer:
someone may still want to re-run them). Their logs go with them (``job_logs`` cascades);
webhooks, approvals and child jobs that named them keep their rows with ``job_id`` NULL.
Rows another transaction holds are skipped (SKIP LOCKED), so concurrent runs never wait on
each other. Owned by the system role (it crosses orgs); the application role may only call
it. The partial index on ``finished_at`` keeps the search off the live rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SIGNATURE = "prune_finished_jobs(timestamptz, timestamptz, integer)"


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
        "ix_jobs_finished",
        "jobs",
        ["finished_at"],
        postgresql_where=sa.text("status IN ('completed', 'failed', 'cancelled')"),
    )
    op.execute(
        """
CREATE FUNCTION prune_finished_jobs(
    p_done_before timestamptz, p_failed_before timestamptz, p_batch integer
) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH doomed AS (
        SELECT id FROM jobs
         WHERE status IN ('completed', 'failed', 'cancelled')
           AND finished_at < CASE WHEN status = 'failed' THEN p_failed_before
                                  ELSE p_done_before END
         ORDER BY finished_at
         LIMIT p_batch
           FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM jobs j USING doomed WHERE j.id = doomed.id RETURNING 1
    )
    SELECT count(*)::integer FROM gone;
$$;
"""
    )
    for statement in system_function_owner(SIGNATURE):
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.drop_index("ix_jobs_finished", table_name="jobs")
