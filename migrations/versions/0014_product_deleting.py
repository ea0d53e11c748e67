"""product status 'deleting': a product whose live listings are being taken down before its
rows go

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TYPE product_status ADD VALUE IF NOT EXISTS 'deleting'")


def downgrade() -> None:
    # Postgres cannot drop an enum label: the type is made again without it. A product still
    # being deleted goes back to active (its listings stay as they are).
    op.execute("UPDATE products SET status = 'active' WHERE status = 'deleting'")
    op.execute("ALTER TYPE product_status RENAME TO product_status_old")
    op.execute("CREATE TYPE product_status AS ENUM ('active', 'draft', 'archived')")
    op.execute("ALTER TABLE products ALTER COLUMN status DROP DEFAULT")
    op.execute(
        "ALTER TABLE products ALTER COLUMN status TYPE product_status "
        "USING status::text::product_status"
    )
    op.execute("ALTER TABLE products ALTER COLUMN status SET DEFAULT 'active'")
    op.execute("DROP TYPE product_status_old")
