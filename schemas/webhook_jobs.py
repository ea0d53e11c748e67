"""Payload schemas of the order-event jobs (``fusion/webhooks/jobs.py``): ``process_webhook``
takes the id of the stored delivery and nothing else (the delivery itself stays in its table),
``price_order`` that and the order's id;
``consume_order_queue`` and ``subscribe_order_events`` take nothing (the job's store is
all they need)."""

from __future__ import annotations

from marshmallow import fields

from fusion.webhooks.service import CONSUME_JOB, PRICE_JOB, PROCESS_JOB, SUBSCRIBE_JOB
from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema


class ProcessWebhookPayloadSchema(StrictSchema):
    webhook_id = fields.UUID(required=True)


class PriceOrderPayloadSchema(StrictSchema):
    webhook_id = fields.UUID(required=True)
    order_id = fields.UUID(required=True)


class ConsumeOrderQueuePayloadSchema(StrictSchema):
    pass


class SubscribeOrderEventsPayloadSchema(StrictSchema):
    pass


register_payload_schema(PROCESS_JOB, ProcessWebhookPayloadSchema)
register_payload_schema(PRICE_JOB, PriceOrderPayloadSchema)
register_payload_schema(CONSUME_JOB, ConsumeOrderQueuePayloadSchema)
register_payload_schema(SUBSCRIBE_JOB, SubscribeOrderEventsPayloadSchema)
