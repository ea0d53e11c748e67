"""webhooks: one delivery per signed body; orders: the platform time of the status held

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02

Shopify's webhook id and timestamp headers are not signed, so the same signed body resent
with a new id header used to be a new delivery (a second job). From this revision a store
holds each body digest once: a unique index on (org, store, body_sha256). Rows from before it
whose body repeats an earlier delivery of the same store are kept for the record, marked
``replay_of`` the first one, and left out of the index (a partial one); new rows never set it.

``orders.platform_updated_at`` is the platform's time (updated_at, event time) of the newest
state the hub applied, so an older report never rolls the status back. NULL for the orders
stored before (the next report sets it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

MARK_REPLAYS = """
UPDATE webhooks w SET replay_of = ranked.first_id
FROM (
    SELECT id,
           row_number() OVER same_body AS n,
           first_value(id) OVER same_body AS first_id
    FROM webhooks
    WINDOW same_body AS (PARTITION BY org_id, store_id, body_sha256 ORDER BY created_at, id)
) AS ranked
WHERE w.id = ranked.id AND ranked.n > 1
"""


def upgrade() -> None:
    op.add_column("webhooks", sa.Column("replay_of", sa.UUID(), nullable=True))
    op.execute(MARK_REPLAYS)
    op.create_index(
        "uq_webhooks_org_id_store_id_body_sha256",
        "webhooks",
        ["org_id", "store_id", "body_sha256"],
        unique=True,
        postgresql_where=sa.text("replay_of IS NULL"),
    )
    op.add_column("orders", sa.Column("platform_updated_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("orders", "platform_updated_at")
    op.drop_index("uq_webhooks_org_id_store_id_body_sha256", table_name="webhooks")
    op.drop_column("webhooks", "replay_of")
