"""orders: fulfilments sent to (or read back from) the platforms, and returned order lines

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-02

- ``fulfilments``: a shipment of some of an order's lines with carrier and tracking, its
  status (pending, shipped, failed), who shipped it (the hub asked the platform, or the
  platform shipped it itself and the hub read it back), the platform's id and answer.
- ``order_returns``: units of one order line that came back, once per (line, what reported
  it), with what went back into stock as a ``return`` movement of the ledger.
Both are tenant tables with RLS like the others.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
TABLES = ("fulfilments", "order_returns")


def _tenant(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("org_id", sa.UUID(), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f(f"fk_{table}_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _order(table: str) -> sa.SchemaItem:
    return sa.ForeignKeyConstraint(
        ["order_id"], ["orders.id"], name=op.f(f"fk_{table}_order_id_orders"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "fulfilments",
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM("pending", "shipped", "failed", name="fulfilment_status"),
            server_default="pending",
            nullable=False,
        ),
        sa.Column(
            "source",
            postgresql.ENUM("hub", "platform", name="fulfilment_source"),
            server_default="hub",
            nullable=False,
        ),
        sa.Column("carrier", sa.String(length=100), nullable=False),
        sa.Column("tracking_number", sa.String(length=200), nullable=False),
        sa.Column("tracking_url", sa.String(length=2000), nullable=True),
        sa.Column(
            "lines",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column(
            "platform_answer",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        *_tenant("fulfilments"),
        _order("fulfilments"),
        sa.UniqueConstraint(
            "org_id", "idempotency_key", name=op.f("uq_fulfilments_org_id_idempotency_key")
        ),
        sa.UniqueConstraint(
            "order_id", "external_id", name=op.f("uq_fulfilments_order_id_external_id")
        ),
    )
    op.create_index("ix_fulfilments_order_id", "fulfilments", ["order_id"])
    op.create_table(
        "order_returns",
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column("order_line_id", sa.UUID(), nullable=False),
        sa.Column("source_key", sa.String(length=400), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("restocked", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=True),
        *_tenant("order_returns"),
        _order("order_returns"),
        sa.ForeignKeyConstraint(
            ["order_line_id"],
            ["order_lines.id"],
            name=op.f("fk_order_returns_order_line_id_order_lines"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "order_line_id", "source_key", name=op.f("uq_order_returns_order_line_id_source_key")
        ),
    )
    op.create_index("ix_order_returns_order_id", "order_returns", ["order_id"])
    for table in TABLES:
        for statement in (
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY org_isolation ON {table} USING (org_id = {CURRENT_ORG}) "
            f"WITH CHECK (org_id = {CURRENT_ORG})",
        ):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.execute("DROP TYPE IF EXISTS fulfilment_source")
    op.execute("DROP TYPE IF EXISTS fulfilment_status")
