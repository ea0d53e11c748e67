"""Payload schema of ``fulfil_order`` (``fusion/orders/jobs.py``): the id of the fulfilment it
tells the platform about, and nothing else (the fulfilment itself stays in its table)."""

from __future__ import annotations

from marshmallow import fields

from fusion.orders.service import FULFIL_JOB
from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema


class FulfilOrderPayloadSchema(StrictSchema):
    fulfilment_id = fields.UUID(required=True)


register_payload_schema(FULFIL_JOB, FulfilOrderPayloadSchema)
