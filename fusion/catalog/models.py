"""The org's catalog (products and variants, one stock figure per SKU) and its listings."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class ListingStatus(enum.StrEnum):
    DRAFT = "draft"
    STAGED = "staged"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    DELISTED = "delisted"


# A listing with an external id in one of these is (or may still be) on sale on its platform:
# a listing whose update or take-down failed keeps selling, so it keeps getting stock.
LIVE = (ListingStatus.PUBLISHED, ListingStatus.FAILED)


class ProductStatus(enum.StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"
    # Its live listings are being taken down before its rows go (fusion.catalog.deletes);
    # the hub's own, never set by a person.
    DELETING = "deleting"


class Product(TenantScoped, Base):
    __tablename__ = "products"
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, server_default="")
    vendor: Mapped[str] = mapped_column(String(200), server_default="")
    product_type: Mapped[str] = mapped_column(String(200), server_default="")
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), server_default=text("'{}'::character varying[]")
    )
    status: Mapped[ProductStatus] = mapped_column(
        pg_enum(ProductStatus, "product_status"), server_default=ProductStatus.ACTIVE.value
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # The hub's own category key, which each store maps to its platform's
    # (fusion.stores.catalog_rules).
    category: Mapped[str] = mapped_column(String(200), server_default="")
    # What a variant without a price of its own sells at (before each store's price rule).
    base_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))

    __table_args__ = (
        Index("ix_products_org_id_created_at", "org_id", text("created_at DESC")),
        CheckConstraint("base_price >= 0", name="base_price_not_negative"),
    )


class ProductVariant(TenantScoped, Base):
    __tablename__ = "product_variants"
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(500), server_default="")
    # None: the product's base price.
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    # The one available quantity the hub holds for this SKU.
    available_quantity: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Counts the changes of available_quantity (fusion.inventory.ledger): the variant's ETag.
    stock_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    barcode: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Set while the variant is being taken off its product's listings (fusion.catalog.deletes):
    # drafts leave it out, and the row goes once no live listing carries it.
    deleting_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("org_id", "sku"),
        CheckConstraint("available_quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        Index("ix_product_variants_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_product_variants_product_id", "product_id"),
    )


class Listing(TenantScoped, Base):
    """A product on one store."""

    __tablename__ = "listings"
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    status: Mapped[ListingStatus] = mapped_column(
        pg_enum(ListingStatus, "listing_status"), server_default=ListingStatus.DRAFT.value
    )
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_url: Mapped[str | None] = mapped_column(String(1000))
    platform_data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    last_error: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    last_synced_at: Mapped[datetime | None]
    # Overrides, key by key, of the store's stock_rules (fusion.stores.stock_rules).
    stock_rules: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    __table_args__ = (
        UniqueConstraint("product_id", "store_id"),
        Index("ix_listings_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_listings_store_id_status", "store_id", "status"),
        Index("ix_listings_platform_data", "platform_data", postgresql_using="gin"),
    )


def on_sale() -> ColumnElement[bool]:
    """The listings that are (or may still be) on sale on their platform."""
    return and_(Listing.status.in_(LIVE), Listing.external_id.is_not(None))


class ProductImage(TenantScoped, Base):
    """One image of a product, in its place among the product's images (0 first). The bytes
    live in the image store (``fusion.media``) under ``storage_key``; a row is never changed
    but for its place and alt text, so an image's id names the same bytes for ever (the
    platforms' ids of it are kept on each listing: ``platform_data["images"]``)."""

    __tablename__ = "product_images"
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255), server_default="")
    alt: Mapped[str] = mapped_column(String(500), server_default="")
    storage_key: Mapped[str] = mapped_column(String(300))

    __table_args__ = (
        UniqueConstraint("product_id", "position", deferrable=True, initially="DEFERRED"),
        CheckConstraint("position >= 0", name="position_not_negative"),
        Index("ix_product_images_org_id_created_at", "org_id", text("created_at DESC")),
    )
