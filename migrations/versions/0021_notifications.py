"""notifications: an org's channels and the log of what was sent to them

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02

- ``notification_channels``: where an org's events go (email, Slack-compatible webhook,
  signed outbound webhook), which events, thresholds; an outbound webhook's signing secret
  is a Fernet token (``fusion keys rotate`` walks it).
- ``notification_deliveries``: one row per event and channel, with every attempt; unique per
  (channel, dedup key) so one condition notifies a channel once per window.
Both are tenant tables like the others (RLS ENABLEd and FORCEd, keyed on ``fusion.org_id``).

Two narrow readers for beat, SECURITY DEFINER functions owned by the system role and callable
by the application role only, like those of 0004: ``notification_orgs()`` (the orgs with an
enabled channel, for the periodic checks) and ``expiring_approvals(integer)`` (pending
approvals expiring within that many seconds: org and approval ids only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
CHANNELS = "notification_channels"
DELIVERIES = "notification_deliveries"
KINDS = ("email", "slack", "webhook")
STATUSES = ("pending", "delivered", "failed")

FUNCTIONS = {
    "notification_orgs()": """
CREATE FUNCTION notification_orgs()
RETURNS TABLE (org_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The orgs with at least one enabled channel: ids only.
    SELECT DISTINCT c.org_id FROM notification_channels c WHERE c.enabled ORDER BY 1
$$;
""",
    "expiring_approvals(integer)": """
CREATE FUNCTION expiring_approvals(p_within_s integer)
RETURNS TABLE (org_id uuid, approval_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Pending approvals that expire within p_within_s seconds and have not expired yet.
    SELECT a.org_id, a.id FROM approvals a
     WHERE a.status = 'pending' AND a.expires_at > now()
       AND a.expires_at <= now() + make_interval(secs => p_within_s)
     ORDER BY a.expires_at, a.id
     LIMIT 5000
$$;
""",
}


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("org_id", sa.UUID(), nullable=False),
    ]  # fmt: skip


def _isolate(table: str) -> None:
    for statement in (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}",
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY org_isolation ON {table} USING (org_id = {CURRENT_ORG}) "
        f"WITH CHECK (org_id = {CURRENT_ORG})",
    ):
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        CHANNELS,
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.Enum(*KINDS, name="notification_channel_kind"), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column(
            "events",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column(
            "thresholds",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.UUID(), nullable=True),
        *_common(),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_notification_channels_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_notification_channels_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
    )  # fmt: skip
    op.create_index(
        "ix_notification_channels_org_id_created_at",
        CHANNELS,
        ["org_id", sa.literal_column("created_at DESC")],
    )
    op.create_table(
        DELIVERIES,
        sa.Column("channel_id", sa.UUID(), nullable=False),
        sa.Column("event", sa.String(length=60), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=True),
        sa.Column(
            "payload", postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"), nullable=False,
        ),
        sa.Column(
            "status", sa.Enum(*STATUSES, name="notification_delivery_status"),
            server_default="pending", nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column(
            "attempt_log", postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"), nullable=False,
        ),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_common(),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_notification_deliveries_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["notification_channels.id"],
            name=op.f("fk_notification_deliveries_channel_id_notification_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_notification_deliveries_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint(
            "channel_id", "dedup_key", name=op.f("uq_notification_deliveries_channel_id_dedup_key")
        ),
    )  # fmt: skip
    op.create_index(
        "ix_notification_deliveries_org_id_created_at",
        DELIVERIES,
        ["org_id", sa.literal_column("created_at DESC")],
    )
    op.create_index("ix_notification_deliveries_channel_id", DELIVERIES, ["channel_id"])
    _isolate(CHANNELS)
    _isolate(DELIVERIES)
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {SYSTEM_ROLE}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for table in (DELIVERIES, CHANNELS):
        op.execute(f"DROP POLICY IF EXISTS org_isolation ON {table}")
    op.drop_index("ix_notification_deliveries_channel_id", table_name=DELIVERIES)
    op.drop_index("ix_notification_deliveries_org_id_created_at", table_name=DELIVERIES)
    op.drop_table(DELIVERIES)
    op.drop_index("ix_notification_channels_org_id_created_at", table_name=CHANNELS)
    op.drop_table(CHANNELS)
    op.execute("DROP TYPE IF EXISTS notification_delivery_status")
    op.execute("DROP TYPE IF EXISTS notification_channel_kind")
