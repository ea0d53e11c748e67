"""Webhook deliveries received from the platforms, stored once per delivery id."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class DeliveryStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, its process_webhook job not yet done
    IGNORED = "ignored"  # nothing in it for the hub (a topic it does not act on, no order)
    PROCESSED = "processed"  # its order ingested, its stock taken once


class WebhookDelivery(TenantScoped, Base):
    __tablename__ = "webhooks"
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(40))
    delivery_id: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(120))
    body_sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[DeliveryStatus] = mapped_column(
        pg_enum(DeliveryStatus, "delivery_status"), server_default=DeliveryStatus.RECEIVED.value
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # Set only on rows from before migration 0017 whose body repeated an earlier delivery of
    # the store (kept for the record): since then such a resend is a duplicate, never a row.
    # (No foreign key: the rows go with their store, and a SET NULL could not keep the
    # index below unique.)
    replay_of: Mapped[uuid.UUID | None]

    __table_args__ = (
        UniqueConstraint("org_id", "store_id", "delivery_id"),
        # The same signed bytes are the same delivery whatever id header came with them:
        # Shopify's webhook id and timestamp headers are not signed.
        Index(
            "uq_webhooks_org_id_store_id_body_sha256",
            "org_id",
            "store_id",
            "body_sha256",
            unique=True,
            postgresql_where=text("replay_of IS NULL"),
        ),
        Index("ix_webhooks_org_id_created_at", "org_id", text("created_at DESC")),
    )
