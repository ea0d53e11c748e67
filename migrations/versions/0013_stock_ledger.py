"""inventory: the stock ledger, per-channel stock rules and what each channel holds

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-29

- ``stock_movements``: every change of a SKU's stock, append-only. The application role may
  SELECT and INSERT only, and a trigger refuses UPDATE, DELETE and TRUNCATE for everyone
  (like ``audit_logs``), with one exception: the foreign keys' own ``ON DELETE SET NULL``
  when a variant or an order is deleted. The history of a deleted variant is kept (its SKU
  is on every row); CASCADE would have had to delete ledger rows, which is what the ledger
  exists to prevent. ``job_id`` has no foreign key: jobs are pruned, movements are not.
- ``product_variants.stock_version`` counts the changes of ``available_quantity``: the
  variant's ETag, for a PATCH that must not erase a concurrent change.
- ``stores.stock_rules`` and ``listings.stock_rules``: what the channel is shown.
- ``listing_stock``: per listing and SKU, what was last pushed, when the channel took it,
  and what the channel held when last read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"


def isolate_tenant_table(table: str) -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY org_isolation ON {table} USING (org_id = {CURRENT_ORG}) "
        f"WITH CHECK (org_id = {CURRENT_ORG})",
    ]


def release_tenant_table(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS org_isolation ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> list[str]:
    return [
        f"GRANT {privileges} ON {table} TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}",
    ]


KINDS = (
    "order",
    "cancellation",
    "return",
    "manual_set",
    "manual_adjustment",
    "import",
    "sync_correction",
)

APPEND_ONLY = """
CREATE FUNCTION stock_movements_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
-- The one change allowed: a foreign key's SET NULL when the variant or order is deleted.
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.variant_id IS NULL OR NEW.variant_id = OLD.variant_id)
       AND (NEW.order_id IS NULL OR NEW.order_id = OLD.order_id)
       AND to_jsonb(NEW) - 'variant_id' - 'order_id' = to_jsonb(OLD) - 'variant_id' - 'order_id'
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'stock_movements is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER stock_movements_no_change BEFORE UPDATE OR DELETE ON stock_movements
    FOR EACH ROW EXECUTE FUNCTION stock_movements_refuse();
CREATE TRIGGER stock_movements_no_truncate BEFORE TRUNCATE ON stock_movements
    FOR EACH STATEMENT EXECUTE FUNCTION stock_movements_refuse();
"""


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _jsonb_rules(table: str) -> None:
    op.add_column(
        table,
        sa.Column(
            "stock_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def upgrade() -> None:
    op.add_column(
        "product_variants",
        sa.Column("stock_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    _jsonb_rules("stores")
    _jsonb_rules("listings")
    op.create_table(
        "stock_movements",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("variant_id", sa.UUID(), nullable=True),
        sa.Column("sku", sa.String(length=120), nullable=False),
        sa.Column("kind", postgresql.ENUM(*KINDS, name="stock_movement_kind"), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("on_hand_after", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("order_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_stock_movements_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["product_variants.id"],
            name=op.f("fk_stock_movements_variant_id_product_variants"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_stock_movements_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movements")),
    )
    op.create_index(
        "ix_stock_movements_org_id_variant_id_created_at",
        "stock_movements",
        ["org_id", "variant_id", sa.literal_column("created_at DESC")],
    )
    op.create_table(
        "listing_stock",
        sa.Column("listing_id", sa.UUID(), nullable=False),
        sa.Column("sku", sa.String(length=120), nullable=False),
        sa.Column("pushed_quantity", sa.Integer(), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote_quantity", sa.Integer(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_listing_stock_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.id"],
            name=op.f("fk_listing_stock_listing_id_listings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_stock")),
        sa.UniqueConstraint("listing_id", "sku", name=op.f("uq_listing_stock_listing_id_sku")),
    )
    for statement in [
        *grant_app("stock_movements", "SELECT, INSERT"),
        f"REVOKE UPDATE, DELETE, TRUNCATE ON stock_movements FROM {SYSTEM_ROLE}",
        *isolate_tenant_table("stock_movements"),
        *grant_app("listing_stock"),
        *isolate_tenant_table("listing_stock"),
        APPEND_ONLY,
    ]:
        op.execute(statement)


def downgrade() -> None:
    for table in ("listing_stock", "stock_movements"):
        for statement in release_tenant_table(table):
            op.execute(statement)
    op.drop_table("listing_stock")
    op.execute("DROP TRIGGER IF EXISTS stock_movements_no_truncate ON stock_movements")
    op.execute("DROP TRIGGER IF EXISTS stock_movements_no_change ON stock_movements")
    op.drop_index("ix_stock_movements_org_id_variant_id_created_at", table_name="stock_movements")
    op.drop_table("stock_movements")
    op.execute("DROP FUNCTION IF EXISTS stock_movements_refuse()")
    op.execute("DROP TYPE IF EXISTS stock_movement_kind")
    op.drop_column("listings", "stock_rules")
    op.drop_column("stores", "stock_rules")
    op.drop_column("product_variants", "stock_version")
