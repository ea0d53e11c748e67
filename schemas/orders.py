"""Orders and their lines, their fulfilments and returns."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from fusion.orders.models import FulfilmentSource, FulfilmentStatus
from schemas.common import Money, PageQuerySchema, StrictSchema, Text, Timestamps, page_of


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


class LineQuantitySchema(StrictSchema):
    line_id = fields.UUID(required=True, metadata={"description": "An id of the order's lines."})
    quantity = fields.Integer(required=True, validate=validate.Range(min=1, max=1_000_000))


class FulfilmentCreateSchema(StrictSchema):
    carrier = Text(required=True, validate=validate.Length(min=1, max=100))
    tracking_number = Text(required=True, validate=validate.Length(min=1, max=200))
    tracking_url = fields.Url(
        load_default=None, schemes={"http", "https"}, validate=validate.Length(max=2000)
    )
    lines = fields.List(
        fields.Nested(LineQuantitySchema),
        required=True,
        validate=validate.Length(min=1, max=250),
        metadata={"description": "The lines shipped and how many of each."},
    )


class FulfilmentSchema(Timestamps):
    order_id = fields.UUID(required=True)
    status = fields.Enum(
        FulfilmentStatus,
        by_value=True,
        required=True,
        metadata={
            "description": "pending until the platform answers; shipped with its answer; "
            "failed with its reason in error."
        },
    )
    source = fields.Enum(
        FulfilmentSource,
        by_value=True,
        required=True,
        metadata={
            "description": "hub: sent by the hub; platform: shipped by the platform itself "
            "(Printify) and read back."
        },
    )
    carrier = Text(required=True)
    tracking_number = Text(required=True)
    tracking_url = Text(allow_none=True, required=True)
    lines = fields.List(fields.Nested(LineQuantitySchema), required=True)
    external_id = Text(allow_none=True, required=True)
    platform_answer = fields.Dict(required=True)
    error = Text(allow_none=True, required=True)
    job_id = fields.UUID(allow_none=True, required=True)
    shipped_at = fields.AwareDateTime(allow_none=True, required=True)


class ReturnCreateSchema(StrictSchema):
    lines = fields.List(
        fields.Nested(LineQuantitySchema),
        required=True,
        validate=validate.Length(min=1, max=250),
        metadata={"description": "The lines that came back and how many of each."},
    )
    reason = Text(load_default="", validate=validate.Length(max=2000))


class OrderReturnSchema(Timestamps):
    order_line_id = fields.UUID(required=True)
    quantity = fields.Integer(required=True)
    restocked = fields.Integer(
        required=True,
        metadata={"description": "Units that went back into stock (a return movement)."},
    )
    reason = Text(required=True)
    job_id = fields.UUID(allow_none=True, required=True)


class ReturnResultSchema(Schema):
    returns = fields.List(fields.Nested(OrderReturnSchema), required=True)
    restocked = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Stock this request gave back, per SKU (empty for a repeat)."},
    )


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
    fulfilments = fields.List(
        fields.Nested(FulfilmentSchema),
        required=True,
        metadata={"description": "Its shipments, oldest first."},
    )
    returns = fields.List(
        fields.Nested(OrderReturnSchema),
        required=True,
        metadata={"description": "Lines that came back (refunded or returned), oldest first."},
    )


OrderPageSchema = page_of(OrderSchema, "OrderPageSchema")


class OrderQuerySchema(PageQuerySchema):
    store_id = fields.UUID(load_default=None)
    status = Text(load_default=None, validate=validate.Length(max=40))
