"""The webhook deliveries the hub stored (read only): where an order came from."""

from __future__ import annotations

import uuid

from flask_smorest import Blueprint

from api.security import org_scope, tx
from fusion.auth.models import Role
from fusion.webhooks import service as webhooks
from fusion.webhooks.models import WebhookDelivery
from schemas.webhook_deliveries import WebhookDeliverySchema

blp = Blueprint(
    "webhook_deliveries", __name__, url_prefix="/orgs", description="Webhook deliveries."
)


@blp.get("/<uuid:org_id>/webhook-deliveries/<uuid:delivery_id>")
@blp.response(200, WebhookDeliverySchema)
@org_scope(Role.VIEWER)
def get_delivery(org_id: uuid.UUID, delivery_id: uuid.UUID) -> WebhookDelivery:
    """One delivery a platform sent: its topic, status and the job it was handed to (an
    order's ``webhook_delivery_id`` names it)."""
    return webhooks.get_delivery(tx(), delivery_id)
