"""onboarding: adopting the listings a store already sells

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02

- ``store_adoptions``: one adoption of a store's listings (reading, previewed, confirmed,
  applied), where its reading goes on (the platform's page cursor), its plan's counts and jobs.
- ``store_adoption_listings``: each listing as the platform showed it, with what adoption does
  with it (link, create, conflict, adopted) and why.
Both are tenant tables with RLS like the others.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
TABLES = ("store_adoptions", "store_adoption_listings")


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


def _jsonb(name: str, default: str) -> sa.Column:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text(f"'{default}'::jsonb"),
        nullable=False,
    )


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "store_adoptions",
        sa.Column("store_id", sa.UUID(), nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM(
                "reading", "previewed", "confirmed", "applied", name="store_adoption_status"
            ),
            server_default="reading",
            nullable=False,
        ),
        sa.Column("cursor", sa.String(length=1000), nullable=True),
        sa.Column("pages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _jsonb("plan", "{}"),
        sa.Column("read_job_id", sa.UUID(), nullable=True),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        *_tenant("store_adoptions"),
        _fk("store_adoptions", "store_id", "stores", "CASCADE"),
        _fk("store_adoptions", "read_job_id", "jobs", "SET NULL"),
        _fk("store_adoptions", "job_id", "jobs", "SET NULL"),
        _fk("store_adoptions", "created_by", "users", "SET NULL"),
    )
    op.create_index(
        "ix_store_adoptions_store_id_created_at", "store_adoptions", ["store_id", "created_at"]
    )
    op.create_table(
        "store_adoption_listings",
        sa.Column("adoption_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=500), server_default="", nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("variants", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _jsonb("raw", "{}"),
        sa.Column(
            "action",
            postgresql.ENUM("link", "create", "conflict", "adopted", name="store_adoption_action"),
            nullable=True,
        ),
        sa.Column("product_id", sa.UUID(), nullable=True),
        _jsonb("conflicts", "[]"),
        *_tenant("store_adoption_listings"),
        _fk("store_adoption_listings", "adoption_id", "store_adoptions", "CASCADE"),
        _fk("store_adoption_listings", "product_id", "products", "SET NULL"),
        sa.UniqueConstraint(
            "adoption_id",
            "external_id",
            name=op.f("uq_store_adoption_listings_adoption_id_external_id"),
        ),
        sa.UniqueConstraint(
            "adoption_id", "position", name=op.f("uq_store_adoption_listings_adoption_id_position")
        ),
    )
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
    op.execute("DROP TYPE IF EXISTS store_adoption_action")
    op.execute("DROP TYPE IF EXISTS store_adoption_status")
