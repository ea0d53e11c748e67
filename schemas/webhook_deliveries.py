"""A stored webhook delivery (read only): what a platform sent, when, and what became of it."""

from __future__ import annotations

from marshmallow import fields

from fusion.webhooks.models import DeliveryStatus
from schemas.common import Text, Timestamps


class WebhookDeliverySchema(Timestamps):
    store_id = fields.UUID(required=True)
    platform = Text(required=True)
    delivery_id = Text(
        required=True, metadata={"description": "The platform's own id of the delivery."}
    )
    topic = Text(required=True, metadata={"description": "The event, in the platform's words."})
    status = fields.Enum(
        DeliveryStatus,
        by_value=True,
        required=True,
        metadata={
            "description": "received: its process_webhook job not yet done; processed: its "
            "order ingested; ignored: nothing in it for the hub."
        },
    )
    body_sha256 = Text(
        required=True, metadata={"description": "SHA-256 of the signed body, in hex."}
    )
    job_id = fields.UUID(
        allow_none=True,
        required=True,
        metadata={"description": "The process_webhook job it was handed to."},
    )
