"""statuses: stores, products and webhook deliveries get Postgres enums

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``stores.status``, ``products.status`` and ``webhooks.status`` were free ``varchar(20)``
columns whose vocabularies lived only in the API schemas and the code. Each becomes a native
enum, as ``listings.status`` already is, so a value outside the vocabulary is refused by the
database whichever path writes it. The labels are written out here, not read from the models,
so this revision means the same thing whatever the models later become.

A row holding a value outside the vocabulary stops the upgrade with a message naming the
table and the values, before anything is changed. ``stores_due_for`` compares
``s.status = 'active'``: an untyped literal, which Postgres reads as the column's enum, so the
function needs no change.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (table, enum type, labels, default), as of this revision.
STATUS_COLUMNS = (
    ("stores", "store_status", ("active", "paused", "disconnected"), "active"),
    ("products", "product_status", ("active", "draft", "archived"), "active"),
    ("webhooks", "delivery_status", ("received", "ignored", "processed"), "received"),
)


def _labels(labels: tuple[str, ...]) -> str:
    return ", ".join(f"'{label}'" for label in labels)


def upgrade() -> None:
    for table, _, labels, _ in STATUS_COLUMNS:
        op.execute(
            f"""DO $$
            DECLARE v_bad text;
            BEGIN
                SELECT string_agg(DISTINCT quote_literal(status), ', ') INTO v_bad
                  FROM {table} WHERE status NOT IN ({_labels(labels)});
                IF v_bad IS NOT NULL THEN
                    RAISE EXCEPTION '{table}.status holds values outside ({", ".join(labels)}): %',
                        v_bad USING HINT = 'Change those rows, then upgrade again.';
                END IF;
            END $$"""
        )
    for table, type_name, labels, default in STATUS_COLUMNS:
        op.execute(f"CREATE TYPE {type_name} AS ENUM ({_labels(labels)})")
        # The old text default cannot be cast in place: drop it, convert, set it again.
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status DROP DEFAULT")
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN status TYPE {type_name} "
            f"USING status::text::{type_name}"
        )
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status SET DEFAULT '{default}'")


def downgrade() -> None:
    for table, type_name, _, default in reversed(STATUS_COLUMNS):
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status DROP DEFAULT")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status TYPE varchar(20) USING status::text")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status SET DEFAULT '{default}'")
        op.execute(f"DROP TYPE {type_name}")
