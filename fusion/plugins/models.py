"""Installed plugins, their capability contracts, and each org's instance of a plugin."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, Timestamped, pg_enum


class ContractLevel(enum.StrEnum):
    NATIVE = "native"
    WORKAROUND = "workaround"
    UNSUPPORTED = "unsupported"


class PluginRecord(Timestamped, Base):
    """A plugin known to this hub (global, written by the contract sync)."""

    __tablename__ = "plugins"
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(40))
    auth_type: Mapped[str] = mapped_column(String(20))
    rate_limit: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class PluginContract(Timestamped, Base):
    __tablename__ = "plugin_contracts"
    plugin_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    capability: Mapped[str] = mapped_column(String(60))
    level: Mapped[ContractLevel] = mapped_column(pg_enum(ContractLevel, "contract_level"))
    notes: Mapped[str] = mapped_column(Text, server_default="")

    __table_args__ = (UniqueConstraint("plugin_id", "capability"),)


class PluginInstance(TenantScoped, Base):
    """An organisation's use of a plugin, with its org-level configuration."""

    __tablename__ = "plugin_instances"
    plugin_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    config: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    __table_args__ = (
        UniqueConstraint("org_id", "plugin_id"),
        Index("ix_plugin_instances_org_id_created_at", "org_id", text("created_at DESC")),
    )
