"""console API: job progress; the job and the webhook delivery that brought an order

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02

- ``jobs.progress``: ``{"done": n, "total": m}`` as a long job last reported it
  (``JobContext.progress``, written at most about once a second), NULL for a job that
  reports none.
- ``orders.job_id`` and ``orders.webhook_delivery_id``: the job that first stored the order
  and, when that job processed a webhook delivery, the delivery. Like
  ``stock_movements.job_id`` neither has a foreign key: jobs are pruned after their
  retention, orders are not, and the id stays on the order for the record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("orders", sa.Column("job_id", sa.UUID(), nullable=True))
    op.add_column("orders", sa.Column("webhook_delivery_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "webhook_delivery_id")
    op.drop_column("orders", "job_id")
    op.drop_column("jobs", "progress")
