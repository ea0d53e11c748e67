"""Payload schemas of the order-event jobs (``fusion/webhooks/jobs.py``): ``process_webhook``
takes the id of the stored delivery and nothing else (the delivery itself stays in its table);
``consume_order_queue`` and ``subscribe_order_events`` take nothing (the job's store is
all they need)."""

from __future__ import annotations

from marshmallow import fields

from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema


class ProcessWebhookPayloadSchema(StrictSchema):
    webhook_id = fields.UUID(required=True)


class ConsumeOrderQueuePayloadSchema(StrictSchema):
    pass


class SubscribeOrderEventsPayloadSchema(StrictSchema):
    pass


register_payload_schema("process_webhook", ProcessWebhookPayloadSchema)
register_payload_schema("consume_order_queue", ConsumeOrderQueuePayloadSchema)
register_payload_schema("subscribe_order_events", SubscribeOrderEventsPayloadSchema)
