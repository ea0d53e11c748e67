"""keys act for their creator; approvals name who asked and bind what they approve

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02

- ``api_key_lookup(text)`` also returns the key's creator and the creator's standing: their
  current role in the key's org (NULL once they are no longer a member) and whether their
  account is active. The application refuses a key whose creator is gone and lets the others
  act with the lower of the key's role and the creator's. The function stays the one narrow
  cross-org read of a key (SECURITY DEFINER, owned by the system role): the org is not known
  before the key is read, and the creator's membership of it must be readable then.
- ``approvals.requested_by_key_id``: the API key a request came through (NULL when a person
  asked directly). ``requested_by`` keeps naming the person: the key's creator for a key.
- ``approvals.content`` and ``approvals.content_digest``: what the approved job would do,
  snapshotted when the approval is asked for (the job payload and the content of the objects
  it touches), and its SHA-256. The job compares them before it acts. NULL for approvals
  asked for before this revision: those are asked again when their job runs.
- ``ix_approvals_job_id``: a job finds the approval that released it.

``approvals`` already has row-level security (0002); new columns inherit its policy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002 and 0004).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
SIGNATURE = "api_key_lookup(text)"

LOOKUP_WITH_CREATOR = """
CREATE FUNCTION api_key_lookup(p_public_id text)
RETURNS TABLE (id uuid, org_id uuid, secret_hash text, role org_role,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
               created_by uuid, creator_role org_role, creator_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The one key with this public id, with its creator's current standing in the key's own
    -- org (never another org's); the caller checks the secret against the hash.
    SELECT k.id, k.org_id, k.secret_hash::text, k.role, k.expires_at, k.revoked_at,
           k.last_used_at, k.created_by, m.role, coalesce(u.is_active, false)
      FROM api_keys k
      LEFT JOIN users u ON u.id = k.created_by
      LEFT JOIN org_members m ON m.org_id = k.org_id AND m.user_id = k.created_by
     WHERE k.public_id = p_public_id
$$;
"""

LOOKUP_AS_OF_0004 = """
CREATE FUNCTION api_key_lookup(p_public_id text)
RETURNS TABLE (id uuid, org_id uuid, secret_hash text, role org_role,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The one key with this public id; the caller checks the secret against the hash.
    SELECT k.id, k.org_id, k.secret_hash::text, k.role, k.expires_at, k.revoked_at,
           k.last_used_at
      FROM api_keys k WHERE k.public_id = p_public_id
$$;
"""


def _replace_lookup(body: str) -> None:
    # The result columns change, which CREATE OR REPLACE cannot do.
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.execute(body)
    op.execute(f"ALTER FUNCTION {SIGNATURE} OWNER TO {SYSTEM_ROLE}")
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def upgrade() -> None:
    _replace_lookup(LOOKUP_WITH_CREATOR)
    op.add_column(
        "approvals",
        sa.Column(
            "requested_by_key_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(
                "api_keys.id",
                ondelete="SET NULL",
                name="fk_approvals_requested_by_key_id_api_keys",
            ),
        ),
    )
    op.add_column("approvals", sa.Column("content", postgresql.JSONB()))
    op.add_column("approvals", sa.Column("content_digest", sa.String(64)))
    op.create_index("ix_approvals_job_id", "approvals", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_job_id", table_name="approvals")
    op.drop_column("approvals", "content_digest")
    op.drop_column("approvals", "content")
    op.drop_column("approvals", "requested_by_key_id")
    _replace_lookup(LOOKUP_AS_OF_0004)
