"""orders: what an order took, so that a cancellation gives back exactly that

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

``stock_taken`` records, per SKU, what the order actually took (less than it asked for when
the hub held less: the quantity stopped at 0). ``stock_restored_at`` is set once, by the
transaction that gave it back after the platform reported the order cancelled, so a
cancellation seen twice (webhook and pull) restores once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column(
            "stock_taken",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("orders", sa.Column("stock_restored_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("orders", "stock_restored_at")
    op.drop_column("orders", "stock_taken")
