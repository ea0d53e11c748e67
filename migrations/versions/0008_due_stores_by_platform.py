"""housekeeping: due stores of some platforms only

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

``stores_due_for(job_type, platforms)`` replaces ``stores_due_for(job_type)``: the same ids of
active stores with no job of that type pending, claimed or running, optionally only on the
given platforms. Beat polls order notification queues every minute, and only Amazon stores
have one: reading every store of every org each minute to drop most of them in Python would
be the wrong way round. ``platforms`` NULL means every platform (the 15-minute syncs).
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD = "stores_due_for(text)"
NEW = "stores_due_for(text, text[])"
NO_JOB_OF_THAT_TYPE = """
       AND NOT EXISTS (
           -- a job still waiting or running covers this slot too: coalesce, not pile up
           SELECT 1 FROM jobs j
            WHERE j.store_id = s.id AND j.job_type = p_job_type
              AND j.status IN ('pending', 'claimed', 'running'))
     ORDER BY s.org_id, s.id;
$$;
"""


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
    op.execute(f"DROP FUNCTION {OLD}")
    op.execute(
        """
CREATE FUNCTION stores_due_for(p_job_type text, p_platforms text[] DEFAULT NULL)
RETURNS TABLE (org_id uuid, store_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.org_id, s.id FROM stores s
     WHERE s.status = 'active'
       AND (p_platforms IS NULL OR s.platform::text = ANY (p_platforms))"""
        + NO_JOB_OF_THAT_TYPE
    )
    for statement in system_function_owner(NEW):
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {NEW}")
    op.execute(
        """
CREATE FUNCTION stores_due_for(p_job_type text)
RETURNS TABLE (org_id uuid, store_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.org_id, s.id FROM stores s
     WHERE s.status = 'active'"""
        + NO_JOB_OF_THAT_TYPE
    )
    for statement in system_function_owner(OLD):
        op.execute(statement)
