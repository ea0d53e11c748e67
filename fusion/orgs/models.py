"""Organisations: the unit of tenancy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, Timestamped

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
