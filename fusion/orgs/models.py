"""Organisations (the unit of tenancy) and the invitations to join one."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.auth.models import Role
from fusion.db.base import Base, TenantScoped, Timestamped, pg_enum

# The key in ``orgs.settings`` that makes multi-factor sign-in a condition of acting as owner.
REQUIRE_OWNER_MFA = "require_owner_mfa"


class Org(Timestamped, Base):
    """A merchant organisation: the unit of tenancy. RLS shows a session only its own org."""

    __tablename__ = "orgs"
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    @property
    def require_owner_mfa(self) -> bool:
        """Whether owners must have multi-factor sign-in on to act in this org."""
        return self.settings.get(REQUIRE_OWNER_MFA) is True


class InvitationStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class Invitation(TenantScoped, Base):
    """An owner's offer of ``role`` in the org to whoever signs in with ``email``. Made
    without looking the email up: the owner never learns whether it has an account until
    its holder answers. Open while pending and before ``expires_at``; at most one pending
    invitation per org and email (case-insensitive)."""

    __tablename__ = "org_invitations"
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[Role] = mapped_column(pg_enum(Role, "org_role"))
    status: Mapped[InvitationStatus] = mapped_column(
        pg_enum(InvitationStatus, "invitation_status"),
        server_default=InvitationStatus.PENDING.value,
    )
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime]
    # Who accepted or declined it, and when (or when it was cancelled).
    answered_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    answered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_org_invitations_org_id_created_at", "org_id", text("created_at DESC")),
        Index(
            "uq_org_invitations_pending_email",
            "org_id",
            text("lower(email)"),
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        # The invitee's own look-up (user_invitations), across orgs.
        Index("ix_org_invitations_email_lower", text("lower(email)")),
    )

    def is_open(self, now: datetime) -> bool:
        return self.status is InvitationStatus.PENDING and self.expires_at > now
