"""Human approval of changes, and the per-org policies that ask for it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Approval(TenantScoped, Base):
    __tablename__ = "approvals"
    resource_type: Mapped[str] = mapped_column(String(60))
    resource_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[ApprovalStatus] = mapped_column(
        pg_enum(ApprovalStatus, "approval_status"), server_default=ApprovalStatus.PENDING.value
    )
    # The person who asked: directly, or through an API key they created (then the key too).
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    requested_by_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime]
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # What the approved job would do, as it was when approval was asked for, and its digest
    # (fusion.approvals.binding): the job refuses to act on anything else.
    content: Mapped[dict[str, Any] | None]
    content_digest: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_approvals_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_approvals_org_id_status_expires_at", "org_id", "status", "expires_at"),
        Index("ix_approvals_job_id", "job_id"),
    )


class ApprovalPolicy(TenantScoped, Base):
    __tablename__ = "approval_policies"
    resource_type: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(60))
    requires_approval: Mapped[bool] = mapped_column(server_default=text("true"))
    # e.g. {"max_price": 50, "max_quantity": 10}: below these the action goes straight through.
    auto_approve_threshold: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb")
    )
    expires_after_s: Mapped[int] = mapped_column(Integer, server_default=text("86400"))

    __table_args__ = (
        UniqueConstraint("org_id", "resource_type", "action"),
        Index("ix_approval_policies_org_id_created_at", "org_id", text("created_at DESC")),
    )
