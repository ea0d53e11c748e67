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
