"""Notification channels (owners manage them; everyone reads them) and their delivery log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import hub
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import Role
from fusion.notifications import service as notifications
from fusion.notifications.models import NotificationChannel, NotificationDelivery
from schemas.notifications import (
    ChannelCreatedSchema,
    ChannelCreateSchema,
    ChannelPageSchema,
    ChannelQuerySchema,
    ChannelSchema,
    ChannelUpdateSchema,
    DeliveryPageSchema,
    DeliveryQuerySchema,
    DeliverySchema,
)


@dataclass(frozen=True)
class _Created:
    """A new channel as ChannelCreatedSchema renders it: its fields and its secret."""

    created: notifications.CreatedChannel

    @property
    def signing_secret(self) -> str | None:
        return self.created.signing_secret

    def __getattr__(self, name: str) -> Any:
        return getattr(self.created.channel, name)


blp = Blueprint("notifications", __name__, url_prefix="/orgs", description="Notification channels.")


@blp.route("/<uuid:org_id>/notification-channels")
class Channels(MethodView):
    @blp.arguments(ChannelQuerySchema, location="query")
    @blp.response(200, ChannelPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's channels (never a signing secret; a Slack URL by its host)."""
        return page(tx(), NotificationChannel, limit=query["limit"], cursor=query["cursor"],
                    filters={"kind": query["kind"]})  # fmt: skip

    @blp.arguments(ChannelCreateSchema)
    @blp.response(201, ChannelCreatedSchema)
    @org_scope(Role.OWNER)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> _Created:
        """Add a channel. A webhook channel's signing secret is in this response only."""
        return _Created(notifications.create_channel(tx(), access(), hub().settings, **body))


@blp.route("/<uuid:org_id>/notification-channels/<uuid:channel_id>")
class ChannelView(MethodView):
    @blp.response(200, ChannelSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, channel_id: uuid.UUID) -> NotificationChannel:
        """One channel."""
        return notifications.get_channel(tx(), channel_id)

    @blp.arguments(ChannelUpdateSchema)
    @blp.response(200, ChannelSchema)
    @org_scope(Role.OWNER)
    def patch(
        self, body: dict[str, Any], org_id: uuid.UUID, channel_id: uuid.UUID
    ) -> NotificationChannel:
        """Rename a channel, point it elsewhere, change its events or thresholds, turn it off."""
        return notifications.update_channel(tx(), access(), hub().settings, channel_id, body)

    @blp.response(204)
    @org_scope(Role.OWNER)
    def delete(self, org_id: uuid.UUID, channel_id: uuid.UUID) -> None:
        """Remove a channel and its delivery log."""
        notifications.delete_channel(tx(), access(), channel_id)


@blp.post("/<uuid:org_id>/notification-channels/<uuid:channel_id>/test")
@blp.response(202, DeliverySchema)
@org_scope(Role.OWNER)
def send_test(org_id: uuid.UUID, channel_id: uuid.UUID) -> NotificationDelivery:
    """Send a test notification now; how it went shows in the delivery log."""
    return notifications.send_test(tx(), access(), channel_id)


@blp.route("/<uuid:org_id>/notification-deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """What was sent to the channels, newest first, with every attempt."""
        return page(
            tx(), NotificationDelivery, limit=query["limit"], cursor=query["cursor"],
            filters={k: query[k] for k in ("channel_id", "status", "event")},
            references={"channel_id": NotificationChannel},
        )  # fmt: skip
