"""An org's notification channels and the log of what was sent to them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, FernetToken, TenantScoped, pg_enum


class ChannelKind(enum.StrEnum):
    EMAIL = "email"  # target: an email address, sent through FUSION_SMTP_HOST
    SLACK = "slack"  # target: a Slack-compatible incoming webhook URL
    WEBHOOK = "webhook"  # target: any URL; signed per Standard Webhooks


class Event(enum.StrEnum):
    """What a channel can be told about (docs/notifications.md lists each payload)."""

    APPROVAL_WAITING = "approval.waiting"
    APPROVAL_EXPIRING = "approval.expiring"
    STORE_SYNC_FAILING = "store.sync_failing"
    STORE_SYNC_LATE = "store.sync_late"
    STORE_THROTTLED = "store.throttled"
    STOCK_OUT = "stock.out"
    JOBS_FAILING = "jobs.failing"
    # Only the "send test" action sends it; no channel subscribes to it.
    TEST = "test"


SUBSCRIBABLE = tuple(e for e in Event if e is not Event.TEST)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # its job has not succeeded yet (it may be between retries)
    DELIVERED = "delivered"  # the channel accepted it (2xx, or the SMTP server took it)
    FAILED = "failed"  # for good: a 4xx, a refused destination, or out of attempts


class NotificationChannel(TenantScoped, Base):
    __tablename__ = "notification_channels"
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ChannelKind] = mapped_column(pg_enum(ChannelKind, "notification_channel_kind"))
    target: Mapped[str] = mapped_column(String(2048))  # a URL, or an email address
    events: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    # An outbound webhook's Standard Webhooks secret (``whsec_...``), shown once at creation.
    secret_encrypted: Mapped[bytes | None] = mapped_column(FernetToken)
    # The periodic checks' thresholds for this channel (fusion.notifications.checks).
    thresholds: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_notification_channels_org_id_created_at", "org_id", text("created_at DESC")),
    )

    @property
    def shown_target(self) -> str:
        """The target as the API and the audit log show it: a Slack incoming webhook's URL is
        its credential (whoever has it can post), so only its scheme and host are shown."""
        if self.kind is ChannelKind.SLACK:
            scheme, _, rest = self.target.partition("://")
            return f"{scheme}://{rest.split('/', 1)[0]}/…"
        return self.target


class NotificationDelivery(TenantScoped, Base):
    """One event for one channel, with every attempt to send it (``attempt_log``)."""

    __tablename__ = "notification_deliveries"
    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(60))
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same on every retry
    # One condition notifies a channel once per key (e.g. per store and hour): no repeats.
    dedup_key: Mapped[str | None] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[DeliveryState] = mapped_column(
        pg_enum(DeliveryState, "notification_delivery_status"),
        server_default=DeliveryState.PENDING.value,
    )
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    response_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("channel_id", "dedup_key"),
        Index("ix_notification_deliveries_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_notification_deliveries_channel_id", "channel_id"),
    )
