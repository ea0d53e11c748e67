"""metrics: per-store freshness and pending approvals; the hour-window job durations go

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02

``/metrics`` (``fusion.metrics``) now reports, per active store, when its inventory was last
synced and its orders last pulled, and how many approvals are pending (and since when). Both
reads are SECURITY DEFINER functions owned by the system role and callable by the application
role only, like the job figures of revision 0004: they return the store id and platform, never
an org or anything a tenant wrote. Job run time is now a histogram the workers record
(``fusion.telemetry``), so ``metrics_job_durations`` has no caller and is dropped.
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "metrics_stores()": """
CREATE FUNCTION metrics_stores()
RETURNS TABLE (store_id uuid, platform text, last_synced_at timestamptz,
               orders_pulled_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Active stores only: a paused or disconnected store is not synced, so not late.
    SELECT s.id, s.platform::text, s.last_synced_at,
           CAST(s.state ->> 'orders_reconciled_at' AS timestamptz)
      FROM stores s
     WHERE s.status = 'active'
     ORDER BY s.id
$$;
""",
    "metrics_approvals()": """
CREATE FUNCTION metrics_approvals()
RETURNS TABLE (pending bigint, oldest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Aggregates only: no org, no ids.
    SELECT count(*), min(a.created_at) FROM approvals a WHERE a.status = 'pending'
$$;
""",
}

JOB_DURATIONS = "metrics_job_durations(integer)"
JOB_DURATIONS_BODY = """
CREATE FUNCTION metrics_job_durations(p_window_s integer)
RETURNS TABLE (queue text, status text, finished bigint, seconds_sum double precision,
               seconds_max double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Run time of jobs finished in the last p_window_s seconds, per queue and outcome.
    SELECT j.queue::text, j.status::text, count(*),
           coalesce(sum(extract(epoch FROM j.finished_at - j.started_at)), 0)::float8,
           coalesce(max(extract(epoch FROM j.finished_at - j.started_at)), 0)::float8
      FROM jobs j
     WHERE j.finished_at IS NOT NULL AND j.started_at IS NOT NULL
       AND j.finished_at > now() - make_interval(secs => p_window_s)
     GROUP BY 1, 2
$$;
"""


def system_function_owner(signature: str) -> list[str]:
    """``signature`` becomes a narrow system path (as of this revision: written out here,
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
    op.execute(f"DROP FUNCTION IF EXISTS {JOB_DURATIONS}")


def downgrade() -> None:
    op.execute(JOB_DURATIONS_BODY)
    for statement in system_function_owner(JOB_DURATIONS):
        op.execute(statement)
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
