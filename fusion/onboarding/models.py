"""Spreadsheet imports: an uploaded file's problems and good rows, until it is applied."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class ImportStatus(enum.StrEnum):
    PREVIEWED = "previewed"  # parsed and checked; nothing applied
    CONFIRMED = "confirmed"  # its job is applying it
    APPLIED = "applied"


class CatalogImport(TenantScoped, Base):
    """An uploaded spreadsheet of products, variants, prices and stock: its good rows are
    kept (``catalog_import_rows``), its problems counted and the first of them named."""

    __tablename__ = "catalog_imports"
    filename: Mapped[str] = mapped_column(String(255), server_default="")
    status: Mapped[ImportStatus] = mapped_column(
        pg_enum(ImportStatus, "catalog_import_status"),
        server_default=ImportStatus.PREVIEWED.value,
    )
    rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    bad_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # [{"line": 7, "column": "price", "reason": "..."}], the first PROBLEMS_SHOWN of them.
    problems: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_catalog_imports_org_id_created_at", "org_id", text("created_at DESC")),
    )


class ImportRow(TenantScoped, Base):
    """One good row of an import, by its line in the file, as parsed (strings)."""

    __tablename__ = "catalog_import_rows"
    import_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("catalog_imports.id", ondelete="CASCADE")
    )
    line: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column()

    __table_args__ = (UniqueConstraint("import_id", "line"),)


class AdoptionStatus(enum.StrEnum):
    READING = "reading"  # its read job is reading the store's listings, page by page
    PREVIEWED = "previewed"  # every listing read and matched; nothing applied
    CONFIRMED = "confirmed"  # its job is applying the plan
    APPLIED = "applied"


class AdoptionAction(enum.StrEnum):
    LINK = "link"  # matched to a catalog product by SKU: linked as its published listing
    CREATE = "create"  # no SKU of it is in the catalog: may become a new catalog product
    CONFLICT = "conflict"  # not adopted: see its conflicts
    ADOPTED = "adopted"  # the hub holds this listing already: nothing to do


class Adoption(TenantScoped, Base):
    """Adopting what a store already sells: its listings as read from the platform
    (``store_adoption_listings``), the plan made of them, and the jobs that read and apply."""

    __tablename__ = "store_adoptions"
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    status: Mapped[AdoptionStatus] = mapped_column(
        pg_enum(AdoptionStatus, "store_adoption_status"),
        server_default=AdoptionStatus.READING.value,
    )
    # Where reading goes on (the platform's page cursor); None before the first page and
    # after the last.
    cursor: Mapped[str | None] = mapped_column(String(1000))
    pages: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # {"link": n, "create": n, "conflict": n, "adopted": n} once previewed.
    plan: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    read_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (Index("ix_store_adoptions_store_id_created_at", "store_id", "created_at"),)


class AdoptionListing(TenantScoped, Base):
    """One listing of the store as the platform showed it, and what adoption will do with it."""

    __tablename__ = "store_adoption_listings"
    adoption_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("store_adoptions.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)  # the order it was read in, from 1
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), server_default="")
    url: Mapped[str | None] = mapped_column(String(1000))
    # [{"sku", "quantity", "price", "barcode", "title"}], as the platform said.
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    raw: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    action: Mapped[AdoptionAction | None] = mapped_column(
        pg_enum(AdoptionAction, "store_adoption_action")
    )
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL")
    )
    # [{"kind": "sku_on_several_listings", "sku": ..., "reason": ...}, ...]
    conflicts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )

    __table_args__ = (
        UniqueConstraint("adoption_id", "external_id"),
        UniqueConstraint("adoption_id", "position"),
    )
