"""Orders ingested from the platforms: stored once per (store, external id)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class Order(TenantScoped, Base):
    __tablename__ = "orders"
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(40), server_default="open")
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    placed_at: Mapped[datetime | None]
    # Placed before the store was connected: kept for the record, it takes no stock (the
    # merchant netted it out before the hub managed the store) and a cancellation gives none.
    history: Mapped[bool] = mapped_column(server_default=text("false"))
    # Set once, in the transaction that decremented stock: an order never counts twice.
    stock_applied_at: Mapped[datetime | None]
    # What it took, per SKU (less than asked when stock ran out), and, once cancelled, when
    # that was given back: a cancellation restores exactly what was taken, once.
    stock_taken: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    stock_restored_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # The platform's time of the newest state the hub applied (its updated_at, event time):
    # an older report never replaces the status (deliveries are unordered, and replayable).
    platform_updated_at: Mapped[datetime | None]
    # What first stored the order: its job and, for a webhook, the delivery (migration 0022).
    # No foreign keys: jobs are pruned, orders are not; the ids stay for the record.
    job_id: Mapped[uuid.UUID | None]
    webhook_delivery_id: Mapped[uuid.UUID | None]

    __table_args__ = (
        UniqueConstraint("org_id", "store_id", "external_id"),
        Index("ix_orders_org_id_created_at", "org_id", text("created_at DESC")),
    )


class OrderLine(TenantScoped, Base):
    __tablename__ = "order_lines"
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    variant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("product_variants.id", ondelete="SET NULL")
    )
    sku: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    external_line_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_order_lines_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_order_lines_order_id", "order_id"),
    )


class FulfilmentStatus(enum.StrEnum):
    PENDING = "pending"  # its job has not yet had the platform's answer
    SHIPPED = "shipped"
    FAILED = "failed"  # the platform refused it (its reason in ``error``)


class FulfilmentSource(enum.StrEnum):
    HUB = "hub"  # the merchant asked the hub to tell the platform
    PLATFORM = "platform"  # the platform shipped it itself (Printify) and the hub read it back


class Fulfilment(TenantScoped, Base):
    """A shipment of some of an order's lines with its carrier and tracking: asked of the
    platform by the ``fulfil_order`` job, or read back from a platform that ships its own."""

    __tablename__ = "fulfilments"
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    status: Mapped[FulfilmentStatus] = mapped_column(
        pg_enum(FulfilmentStatus, "fulfilment_status"), server_default="pending"
    )
    source: Mapped[FulfilmentSource] = mapped_column(
        pg_enum(FulfilmentSource, "fulfilment_source"), server_default="hub"
    )
    carrier: Mapped[str] = mapped_column(String(100))
    tracking_number: Mapped[str] = mapped_column(String(200))
    tracking_url: Mapped[str | None] = mapped_column(String(2000))
    # [{"line_id": "<order line id>", "quantity": n}]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # The platform's id of the shipment (Shopify's fulfillment, Etsy's receipt shipment, the
    # package reference sent to Amazon, Printify's tracking number) and what it answered.
    external_id: Mapped[str | None] = mapped_column(String(255))
    platform_answer: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[uuid.UUID | None]  # no foreign key: jobs are pruned, fulfilments are not
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    shipped_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key"),
        UniqueConstraint("order_id", "external_id"),
        Index("ix_fulfilments_order_id", "order_id"),
    )


class OrderReturn(TenantScoped, Base):
    """Units of one order line that came back (a refund the platform reported, or a return
    the merchant recorded), once per (line, what reported it): ``restocked`` is what went
    back into stock, as a ``return`` movement of the ledger."""

    __tablename__ = "order_returns"
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    order_line_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("order_lines.id", ondelete="CASCADE")
    )
    # "shopify-refund-line:<id>", or "return:<request key>:<line id>" for the returns endpoint
    source_key: Mapped[str] = mapped_column(String(400))
    quantity: Mapped[int] = mapped_column(Integer)
    restocked: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, server_default="")
    job_id: Mapped[uuid.UUID | None]

    __table_args__ = (
        UniqueConstraint("order_line_id", "source_key"),
        Index("ix_order_returns_order_id", "order_id"),
    )
