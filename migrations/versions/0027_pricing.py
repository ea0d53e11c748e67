"""catalog: product category and base price, per-store catalog rules

Revision ID: 0027
Revises: 0023
Create Date: 2026-12-02

- ``products.category`` (the hub's own category key) and ``products.base_price``;
  ``product_variants.price`` may be null: such a variant sells at its product's base price.
- ``stores.catalog_rules``: the store's price rule and its mappings of the hub's categories
  and variant attributes to the platform's (``fusion.stores.catalog_rules``). An Etsy store's
  ``taxonomy_id`` setting, and an Amazon store's ``product_type`` setting, become the
  store's ``"*"`` category (the Etsy setting goes: the mapping replaces it).
No new table: RLS already covers both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "products", sa.Column("category", sa.String(200), server_default="", nullable=False)
    )
    op.add_column("products", sa.Column("base_price", sa.Numeric(12, 2), nullable=True))
    op.create_check_constraint(
        op.f("ck_products_base_price_not_negative"), "products", "base_price >= 0"
    )
    op.alter_column("product_variants", "price", existing_type=sa.Numeric(12, 2), nullable=True)
    op.add_column(
        "stores",
        sa.Column(
            "catalog_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    # A category a person set on the store carries over as its "*" category.
    op.execute(
        """
        UPDATE stores SET catalog_rules = jsonb_build_object(
            'categories', jsonb_build_object('*', settings->>'taxonomy_id'))
        WHERE platform = 'etsy' AND COALESCE(settings->>'taxonomy_id', '') <> ''
        """
    )
    op.execute("UPDATE stores SET settings = settings - 'taxonomy_id' WHERE platform = 'etsy'")
    op.execute(
        """
        UPDATE stores SET catalog_rules = jsonb_build_object(
            'categories', jsonb_build_object('*', settings->>'product_type'))
        WHERE platform = 'amazon_sc' AND COALESCE(settings->>'product_type', '') <> ''
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE stores SET settings = settings || jsonb_build_object(
            'taxonomy_id', (catalog_rules->'categories'->>'*')::integer)
        WHERE platform = 'etsy' AND catalog_rules->'categories' ? '*'
          AND catalog_rules->'categories'->>'*' ~ '^[0-9]+$'
        """
    )
    op.drop_column("stores", "catalog_rules")
    op.execute(
        """
        UPDATE product_variants v SET price = COALESCE(p.base_price, 0)
        FROM products p WHERE v.product_id = p.id AND v.price IS NULL
        """
    )
    op.alter_column("product_variants", "price", existing_type=sa.Numeric(12, 2), nullable=False)
    op.drop_constraint(op.f("ck_products_base_price_not_negative"), "products", type_="check")
    op.drop_column("products", "base_price")
    op.drop_column("products", "category")
