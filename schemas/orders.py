"""Orders and their lines (read only)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import Money, PageQuerySchema, Text, Timestamps, page_of


class OrderSchema(Timestamps):
    store_id = fields.UUID(required=True)
    external_id = Text(required=True)
    status = Text(required=True)
    currency = Text(required=True)
    total = Money(required=True)
    placed_at = fields.AwareDateTime(allow_none=True, required=True)
    stock_applied_at = fields.AwareDateTime(allow_none=True, required=True)
    history = fields.Boolean(
        required=True,
        metadata={
            "description": "Placed before the store was connected: shown for the record, it "
            "took no stock (and its cancellation gives none back)."
        },
    )


class OrderLineSchema(Schema):
    id = fields.UUID(required=True)
    variant_id = fields.UUID(allow_none=True, required=True)
    sku = Text(required=True)
    quantity = fields.Integer(required=True)
    unit_price = Money(required=True)
    external_line_id = Text(allow_none=True, required=True)


class OrderDetailSchema(OrderSchema):
    lines = fields.List(fields.Nested(OrderLineSchema), required=True)
    job_id = fields.UUID(
        allow_none=True,
        required=True,
        metadata={
            "description": "The job that first stored the order (a webhook's "
            "process_webhook or a reconcile_orders pull); it may since have been pruned."
        },
    )
    webhook_delivery_id = fields.UUID(
        allow_none=True,
        required=True,
        metadata={
            "description": "The webhook delivery that brought the order (null when a pull "
            "stored it first)."
        },
    )


OrderPageSchema = page_of(OrderSchema, "OrderPageSchema")


class OrderQuerySchema(PageQuerySchema):
    store_id = fields.UUID(load_default=None)
    status = Text(load_default=None, validate=validate.Length(max=40))
