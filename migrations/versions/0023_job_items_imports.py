"""onboarding: per-item results of bulk jobs, catalog imports, stores needing re-authorisation

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02

- ``job_items``: one row per item (a SKU, an imported row) of a bulk job with its outcome
  (``ok``, ``failed`` with the platform's reason, ``skipped``); deleted with its job.
- ``catalog_imports`` and ``catalog_import_rows``: an uploaded spreadsheet, its problems and
  its good rows, kept in Postgres (not in a job payload) until the import is confirmed.
- ``store_status`` gains ``needs_reauth``: the platform refused the store's grant.
Every new table is a tenant table with RLS like the others.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code (see 0002).
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
TABLES = ("job_items", "catalog_imports", "catalog_import_rows")


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


def upgrade() -> None:
    # ADD VALUE may run in the migration's transaction; the value is only used afterwards.
    op.execute("ALTER TYPE store_status ADD VALUE IF NOT EXISTS 'needs_reauth'")
    op.create_table(
        "job_items",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM("ok", "failed", "skipped", name="job_item_status"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        _jsonb("data", "{}"),
        *_tenant("job_items"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "key", name=op.f("uq_job_items_job_id_key")),
    )
    op.create_index(
        "ix_job_items_job_id_status_created_at", "job_items", ["job_id", "status", "created_at"]
    )
    op.create_table(
        "catalog_imports",
        sa.Column("filename", sa.String(length=255), server_default="", nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM("previewed", "confirmed", "applied", name="catalog_import_status"),
            server_default="previewed",
            nullable=False,
        ),
        sa.Column("rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bad_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _jsonb("problems", "[]"),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        *_tenant("catalog_imports"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_catalog_imports_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_catalog_imports_created_by_users"),
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_catalog_imports_org_id_created_at",
        "catalog_imports",
        ["org_id", sa.literal_column("created_at DESC")],
    )
    op.create_table(
        "catalog_import_rows",
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=120), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        *_tenant("catalog_import_rows"),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["catalog_imports.id"],
            name=op.f("fk_catalog_import_rows_import_id_catalog_imports"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "import_id", "line", name=op.f("uq_catalog_import_rows_import_id_line")
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
    op.execute("DROP TYPE IF EXISTS catalog_import_status")
    op.execute("DROP TYPE IF EXISTS job_item_status")
    # Postgres cannot drop an enum value: stores needing re-authorisation become disconnected.
    op.execute("UPDATE stores SET status = 'disconnected' WHERE status::text = 'needs_reauth'")
