"""A merchant's store on one platform, with its encrypted credentials and rate-limit state."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, FernetToken, TenantScoped, pg_enum


class StoreStatus(enum.StrEnum):
    """Only an active store is synced and receives stock pushes."""

    ACTIVE = "active"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"
    # The platform refused the store's grant (a revoked refresh token): the merchant must
    # connect it again; ``state["reauthorisation"]`` says why and when.
    NEEDS_REAUTH = "needs_reauth"


REAUTHORISATION = "reauthorisation"  # the key of Store.state saying why it needs re-auth


class Store(TenantScoped, Base):
    __tablename__ = "stores"
    platform: Mapped[str] = mapped_column(String(40))  # the plugin slug
    plugin_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("plugin_instances.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str] = mapped_column(String(255))  # shop domain, shop id, seller id
    base_url: Mapped[str | None] = mapped_column(String(500))  # API root; a sandbox in tests
    status: Mapped[StoreStatus] = mapped_column(
        pg_enum(StoreStatus, "store_status"), server_default=StoreStatus.ACTIVE.value
    )
    # Fernet tokens; decrypted only inside a worker for the platform call.
    credentials_encrypted: Mapped[bytes | None] = mapped_column(FernetToken)
    webhook_secret_encrypted: Mapped[bytes | None] = mapped_column(FernetToken)
    rate_limit_config: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    rate_limit_state: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # What a person set, as the plugin declares it (``Plugin.settings``)...
    settings: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # What the store's channel is shown of each SKU's stock (fusion.stores.stock_rules).
    stock_rules: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # ...and, apart, what the hub itself records about the store (``orders_reconciled_at``),
    # which no API call writes.
    state: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    last_synced_at: Mapped[datetime | None]
    # The store's price rule and its category and attribute mappings
    # (fusion.stores.catalog_rules).
    catalog_rules: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    __table_args__ = (
        UniqueConstraint("org_id", "platform", "external_id"),
        Index("ix_stores_org_id_created_at", "org_id", text("created_at DESC")),
    )
