"""catalog: a variant being deleted waits, marked, until its listings no longer carry it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

``deleting_at`` is set when a variant of a listed product is deleted: every draft the hub
pushes leaves it out from then on, and the update job that last removes it from a platform
deletes the row. NULL for every ordinary variant.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("product_variants", sa.Column("deleting_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("product_variants", "deleting_at")
