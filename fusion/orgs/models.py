"""Organisations: the unit of tenancy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, Timestamped


class Org(Timestamped, Base):
    """A merchant organisation: the unit of tenancy. RLS shows a session only its own org."""

    __tablename__ = "orgs"
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
