"""orgs: invitations to join an organisation, and the invitee's narrow look-ups

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02

Members are added by invitation instead of by looking an email up (which told any owner
whether an email had an account): an owner invites an email with a role, and whoever signs
in with that email sees it (``GET /me``) and accepts or declines.

- ``org_invitations``: a tenant table like the others (RLS ENABLEd and FORCEd, keyed on
  ``fusion.org_id``), at most one pending invitation per org and lower(email).
- ``user_invitations(uuid)``: the open invitations addressed to one person's email, across
  orgs (for ``/me``), with the org's name and nothing else of it.
- ``invitation_org(uuid, uuid)``: the org of one invitation if it is addressed to that
  person's email, so that accepting or declining can open that org's transaction.
Both are SECURITY DEFINER functions owned by the system role and callable by the
application role only, like those of 0004. They take the user's id, not an email: the
email compared is the one on the account.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
TABLE = "org_invitations"
STATUSES = ("pending", "accepted", "declined", "cancelled")

FUNCTIONS = {
    "user_invitations(uuid)": """
CREATE FUNCTION user_invitations(p_user_id uuid)
RETURNS TABLE (id uuid, org_id uuid, org_name text, role org_role, invited_at timestamptz,
               expires_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The open invitations addressed to this person's email (for /me), oldest first.
    SELECT i.id, i.org_id, o.name::text, i.role, i.created_at, i.expires_at
      FROM users u
      JOIN org_invitations i ON lower(i.email) = lower(u.email)
      JOIN orgs o ON o.id = i.org_id
     WHERE u.id = p_user_id AND i.status = 'pending' AND i.expires_at > now()
     ORDER BY i.created_at, i.id
$$;
""",
    "invitation_org(uuid, uuid)": """
CREATE FUNCTION invitation_org(p_invitation_id uuid, p_user_id uuid)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The org of one invitation, only if it is addressed to this person's email.
    SELECT i.org_id
      FROM org_invitations i JOIN users u ON lower(i.email) = lower(u.email)
     WHERE i.id = p_invitation_id AND u.id = p_user_id
$$;
""",
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "role",
            postgresql.ENUM("owner", "operator", "viewer", name="org_role", create_type=False),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(*STATUSES, name="invitation_status"),
            server_default="pending",
            nullable=False,
        ),
        sa.Column("invited_by", sa.UUID(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_by", sa.UUID(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_org_invitations_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_org_invitations_invited_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["users.id"],
            name=op.f("fk_org_invitations_answered_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_invitations")),
    )
    op.create_index(
        "ix_org_invitations_org_id_created_at",
        TABLE,
        ["org_id", sa.literal_column("created_at DESC")],
    )
    op.create_index(
        "uq_org_invitations_pending_email",
        TABLE,
        ["org_id", sa.literal_column("lower(email)")],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_org_invitations_email_lower", TABLE, [sa.literal_column("lower(email)")])
    for statement in (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {SYSTEM_ROLE}",
        f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY org_isolation ON {TABLE} USING (org_id = {CURRENT_ORG}) "
        f"WITH CHECK (org_id = {CURRENT_ORG})",
    ):
        op.execute(statement)
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {SYSTEM_ROLE}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute(f"DROP POLICY IF EXISTS org_isolation ON {TABLE}")
    op.drop_index("ix_org_invitations_email_lower", table_name=TABLE)
    op.drop_index(
        "uq_org_invitations_pending_email",
        table_name=TABLE,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_org_invitations_org_id_created_at", table_name=TABLE)
    op.drop_table(TABLE)
    op.execute("DROP TYPE IF EXISTS invitation_status")
