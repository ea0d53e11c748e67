"""catalog: product images

Revision ID: 0025
Revises: 0023
Create Date: 2026-12-02

- ``product_images``: a product's images in order (``position`` 0 first; unique per product,
  checked at commit so a reorder can swap places), each with its type, size and SHA-256 and
  the key of its bytes in the image store (``fusion.media``). A tenant table with RLS like
  the others; deleted with its product.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
TABLE = "product_images"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("product_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), server_default="", nullable=False),
        sa.Column("alt", sa.String(length=500), server_default="", nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
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
        sa.CheckConstraint("position >= 0", name=op.f("ck_product_images_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_product_images_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_images_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_images")),
        sa.UniqueConstraint(
            "product_id",
            "position",
            name=op.f("uq_product_images_product_id_position"),
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    op.create_index(
        "ix_product_images_org_id_created_at",
        TABLE,
        ["org_id", sa.literal_column("created_at DESC")],
    )
    for statement in (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {SYSTEM_ROLE}",
        f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY org_isolation ON {TABLE} USING (org_id = {CURRENT_ORG}) "
        f"WITH CHECK (org_id = {CURRENT_ORG})",
    ):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table(TABLE)
