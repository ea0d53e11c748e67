"""housekeeping: inventory sync fan-out and approval expiry

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

The two cross-org reads and writes of the recurring beat tasks, each a SECURITY DEFINER
function owned by the system role and callable by the application role only:

- ``stores_due_for(job_type)``: (org_id, store_id) of every active store that has no job of
  that type (``sync_inventory``, ``reconcile_orders``) pending, claimed or running. Ids only: the enqueue itself happens in each
  org's own session, under RLS, through the job service.
- ``expire_approvals(batch)``: up to ``batch`` pending approvals past their ``expires_at``
  become ``expired`` (SKIP LOCKED, so concurrent runs never take the same row), each with an
  ``approval.expire`` audit entry by the system in the same transaction (the chain trigger
  links and hashes it). Returns (org_id, approval_id) of each one expired.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "stores_due_for(text)": """
CREATE FUNCTION stores_due_for(p_job_type text)
RETURNS TABLE (org_id uuid, store_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.org_id, s.id FROM stores s
     WHERE s.status = 'active'
       AND NOT EXISTS (
           -- a job still waiting or running covers this slot too: coalesce, not pile up
           SELECT 1 FROM jobs j
            WHERE j.store_id = s.id AND j.job_type = p_job_type
              AND j.status IN ('pending', 'claimed', 'running'))
     ORDER BY s.org_id, s.id;
$$;
""",
    "expire_approvals(integer)": """
CREATE FUNCTION expire_approvals(p_batch integer)
RETURNS TABLE (org_id uuid, approval_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN
        WITH due AS (
            SELECT a.id FROM approvals a
             WHERE a.status = 'pending' AND a.expires_at <= now()
             ORDER BY a.expires_at
             LIMIT p_batch
               FOR UPDATE SKIP LOCKED
        )
        UPDATE approvals a SET status = 'expired', updated_at = now()
          FROM due
         WHERE a.id = due.id
        RETURNING a.id, a.org_id, a.resource_type, a.resource_id, a.action, a.decided_by,
                  a.job_id
    LOOP
        -- the same fields fusion.approvals.service snapshots for its own entries
        INSERT INTO audit_logs (id, org_id, actor_type, actor_id, action, resource_type,
                                resource_id, before, after)
        VALUES (gen_random_uuid(), r.org_id, 'system', NULL, 'approval.expire', 'approval', r.id,
                jsonb_build_object('resource_type', r.resource_type,
                                   'resource_id', r.resource_id, 'action', r.action,
                                   'status', 'pending', 'decided_by', r.decided_by,
                                   'job_id', r.job_id),
                jsonb_build_object('resource_type', r.resource_type,
                                   'resource_id', r.resource_id, 'action', r.action,
                                   'status', 'expired', 'decided_by', r.decided_by,
                                   'job_id', r.job_id));
        org_id := r.org_id;
        approval_id := r.id;
        RETURN NEXT;
    END LOOP;
END $$;
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
