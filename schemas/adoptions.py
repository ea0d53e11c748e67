"""Adoptions of a store's listings as the API shows them."""

from __future__ import annotations

from marshmallow import Schema, fields

from fusion.onboarding.models import AdoptionAction, AdoptionStatus
from schemas.common import PageQuerySchema, StrictSchema, Text, Timestamps, page_of


class AdoptionSchema(Timestamps):
    store_id = fields.UUID(required=True)
    status = fields.Enum(AdoptionStatus, by_value=True, required=True)
    pages = fields.Integer(
        required=True, metadata={"description": "Pages of listings read from the platform."}
    )
    plan = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Listings per action (link, create, conflict, adopted)."},
    )
    read_job_id = fields.UUID(allow_none=True, required=True)
    job_id = fields.UUID(allow_none=True, required=True)


class AdoptionConflictSchema(Schema):
    kind = Text(required=True)
    sku = Text(required=True)
    reason = Text(required=True)
    hub = fields.Integer(metadata={"description": "stock_differs: the hub's figure."})
    channel = fields.Integer(metadata={"description": "stock_differs: the channel's figure."})


class RemoteVariantSchema(Schema):
    sku = Text(required=True)
    quantity = fields.Integer(required=True)
    price = Text(allow_none=True, required=True)
    barcode = Text(allow_none=True, required=True)
    title = Text(required=True)


class AdoptionListingSchema(Timestamps):
    position = fields.Integer(required=True)
    external_id = Text(required=True)
    title = Text(required=True)
    url = Text(allow_none=True, required=True)
    variants = fields.List(fields.Nested(RemoteVariantSchema), required=True)
    action = fields.Enum(AdoptionAction, by_value=True, allow_none=True, required=True)
    product_id = fields.UUID(allow_none=True, required=True)
    conflicts = fields.List(fields.Nested(AdoptionConflictSchema), required=True)


AdoptionListingPageSchema = page_of(AdoptionListingSchema, "AdoptionListingPageSchema")


class AdoptionListingQuerySchema(PageQuerySchema):
    action = fields.Enum(AdoptionAction, by_value=True, load_default=None)


class AdoptionConfirmSchema(StrictSchema):
    create_unmatched = fields.Boolean(
        load_default=False,
        metadata={"description": "Make each listing with no SKU in the catalog a new product."},
    )
