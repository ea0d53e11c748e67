"""The append-only, per-org hash-chained audit log (the database refuses UPDATE and DELETE)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped


class AuditLog(TenantScoped, Base):
    __tablename__ = "audit_logs"
    actor_type: Mapped[str] = mapped_column(String(20))  # user, api_key, system
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(80))
    resource_type: Mapped[str] = mapped_column(String(60))
    resource_id: Mapped[uuid.UUID | None]
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    # Filled by a database trigger: position in the org's chain and the SHA-256 links.
    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    prev_hash: Mapped[str] = mapped_column(String(64), server_default="")
    entry_hash: Mapped[str] = mapped_column(String(64), server_default="")

    __table_args__ = (
        UniqueConstraint("org_id", "seq"),
        Index("ix_audit_logs_org_id_created_at", "org_id", text("created_at DESC")),
    )
