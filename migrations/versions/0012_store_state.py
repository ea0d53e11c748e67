"""stores.state apart from stores.settings; orders.history

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-01

``stores.settings`` holds only what a person sets (the plugin's declared settings, written
through the API); what the hub records about a store itself (``orders_reconciled_at``, the
high-water mark of the order pull) moves to ``stores.state``, which no API call writes.

``orders.history`` marks an order placed before its store was connected: stored so that it can
be seen, it takes no stock (the merchant had netted it out before the hub managed the store).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

HUB_KEYS = ("orders_reconciled_at",)  # what the hub wrote into settings before this revision


def _move(source: str, target: str) -> None:
    # RLS is FORCEd on stores, so even the owner sees no row without an org; lifting FORCE for
    # this one statement (inside the migration's transaction) lets it touch every org's stores.
    op.execute("ALTER TABLE stores NO FORCE ROW LEVEL SECURITY")
    for key in HUB_KEYS:
        op.execute(
            sa.text(
                f"UPDATE stores SET {target} = {target} || jsonb_build_object(:key, {source} -> :key), "
                f"{source} = {source} - :key WHERE {source} ? :key"
            ).bindparams(key=key)
        )
    op.execute("ALTER TABLE stores FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    op.add_column(
        "stores",
        sa.Column(
            "state",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    _move("settings", "state")
    op.add_column(
        "orders",
        sa.Column("history", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("orders", "history")
    _move("state", "settings")
    op.drop_column("stores", "state")
