"""The stock ledger (every change of a SKU's stock, append-only) and what each channel was
last sent and last seen holding."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class MovementKind(enum.StrEnum):
    ORDER = "order"
    CANCELLATION = "cancellation"
    RETURN = "return"
    MANUAL_SET = "manual_set"
    MANUAL_ADJUSTMENT = "manual_adjustment"
    IMPORT = "import"
    SYNC_CORRECTION = "sync_correction"


class StockMovement(TenantScoped, Base):
    """One change of one SKU's stock. The database refuses UPDATE and DELETE (0013), except
    the foreign keys' own ``SET NULL`` when the variant or order goes: the history outlives
    what it is about, which is why ``sku`` is copied here."""

    __tablename__ = "stock_movements"
    # clock_timestamp, not now(): two movements of one transaction keep their order, and the
    # variant's row lock orders movements of different transactions.
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    variant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("product_variants.id", ondelete="SET NULL")
    )
    sku: Mapped[str] = mapped_column(String(120))
    kind: Mapped[MovementKind] = mapped_column(pg_enum(MovementKind, "stock_movement_kind"))
    delta: Mapped[int] = mapped_column(Integer)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(80))  # "user:<id>", "api_key:<id>" or "system"
    # No foreign key: finished jobs are pruned after 14 days, their movements are kept.
    job_id: Mapped[uuid.UUID | None]
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text, server_default="")

    __table_args__ = (
        Index(
            "ix_stock_movements_org_id_variant_id_created_at",
            "org_id",
            "variant_id",
            text("created_at DESC"),
        ),
    )


class ListingStock(TenantScoped, Base):
    """What the hub last pushed of one SKU to one listing's channel, when the channel took
    it, and what the channel held when the hub last read it."""

    __tablename__ = "listing_stock"
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(120))
    pushed_quantity: Mapped[int | None] = mapped_column(Integer)
    pushed_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    remote_quantity: Mapped[int | None] = mapped_column(Integer)
    read_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("listing_id", "sku"),)
