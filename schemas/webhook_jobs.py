"""Payload schema of the ``process_webhook`` job (``fusion/webhooks/jobs.py``): the id of the
stored delivery and nothing else (the delivery itself stays in its table)."""

from __future__ import annotations

from marshmallow import fields

from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema


class ProcessWebhookPayloadSchema(StrictSchema):
    webhook_id = fields.UUID(required=True)


register_payload_schema("process_webhook", ProcessWebhookPayloadSchema)
