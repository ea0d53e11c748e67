"""Products, variants and listings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from fusion.catalog.models import ListingStatus, ProductStatus
from schemas.approvals import OutcomeSchema
from schemas.common import Money, PageQuerySchema, StrictSchema, Text, Timestamps, page_of
from schemas.job_views import JobSchema

MAX_PRICE = Decimal("9999999999")
SETTABLE_STATUSES = [s.value for s in ProductStatus if s != ProductStatus.DELETING]
TAGS = fields.List(Text(validate=validate.Length(min=1, max=100)), validate=validate.Length(max=50))


def _price_in_range(value: Decimal) -> None:
    if not Decimal(0) <= value <= MAX_PRICE:
        raise ValidationError(f"Must be between 0 and {MAX_PRICE}.")


class Price(fields.Decimal):
    """A price: two decimals, 0 to MAX_PRICE (the range is declared in metadata because
    apispec renders a Decimal field's Range bounds as strings)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            places=2,
            as_string=True,
            allow_nan=False,
            validate=_price_in_range,
            metadata={"minimum": 0, "maximum": int(MAX_PRICE)},
            **kwargs,
        )


class ProductSchema(Timestamps):
    title = Text(required=True)
    description = Text(required=True)
    vendor = Text(required=True)
    product_type = Text(required=True)
    tags = fields.List(Text(), required=True)
    status = fields.Enum(ProductStatus, by_value=True, required=True)
    attributes = fields.Dict(required=True)
    # The hub's category key, which each store maps to its platform's
    # (PUT /orgs/{org}/stores/{id}/catalog-rules).
    category = Text(required=True)
    # The price of its variants that have none of their own.
    base_price = Money(allow_none=True, required=True)


ProductPageSchema = page_of(ProductSchema, "ProductPageSchema")


class ProductQuerySchema(PageQuerySchema):
    status = fields.Enum(ProductStatus, by_value=True, load_default=None)
    vendor = Text(load_default=None, validate=validate.Length(max=200))


class ProductCreateSchema(StrictSchema):
    title = Text(required=True, validate=validate.Length(min=1, max=500))
    description = Text(validate=validate.Length(max=20000))
    vendor = Text(validate=validate.Length(max=200))
    product_type = Text(validate=validate.Length(max=200))
    tags = TAGS
    # ``deleting`` is the hub's own, while a product's listings are taken down.
    status = Text(validate=validate.OneOf(SETTABLE_STATUSES))
    attributes = fields.Dict(
        keys=Text(validate=validate.Length(max=100)),
        values=Text(validate=validate.Length(max=2000)),
    )
    category = Text(validate=validate.Length(max=200))
    base_price = Price(allow_none=True)

    @post_load
    def _status(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "status" in data:
            data["status"] = ProductStatus(data["status"])
        return data


class ProductUpdateSchema(ProductCreateSchema):
    title = Text(validate=validate.Length(min=1, max=500))


class VariantSchema(Timestamps):
    product_id = fields.UUID(required=True)
    sku = Text(required=True)
    title = Text(required=True)
    price = Money(allow_none=True, required=True)  # null: the product's base_price
    currency = Text(required=True)
    available_quantity = fields.Integer(required=True)
    barcode = Text(allow_none=True, required=True)
    attributes = fields.Dict(required=True)
    # Set while the variant is taken off its product's live listings, before its row goes.
    deleting_at = fields.AwareDateTime(allow_none=True, required=True)


VariantPageSchema = page_of(VariantSchema, "VariantPageSchema")


class VariantQuerySchema(PageQuerySchema):
    sku = Text(load_default=None, validate=validate.Length(max=120))


class VariantSearchQuerySchema(PageQuerySchema):
    sku = Text(
        load_default=None,
        validate=validate.Length(min=1, max=120),
        metadata={"description": "The SKU starts with this (case-insensitive)."},
    )
    q = Text(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "Found anywhere in the SKU, the variant's title or barcode, or the "
            "product's title (case-insensitive)."
        },
    )


class FoundProductSchema(Schema):
    id = fields.UUID(required=True)
    title = Text(required=True)
    status = fields.Enum(ProductStatus, by_value=True, required=True)


class VariantHitStockSchema(Schema):
    available_quantity = fields.Integer(required=True)
    stock_version = fields.Integer(
        required=True, metadata={"description": "Counts the stock's changes (its ETag)."}
    )


class VariantHitSchema(Schema):
    variant = fields.Nested(VariantSchema, required=True)
    product = fields.Nested(FoundProductSchema, required=True)
    stock = fields.Nested(VariantHitStockSchema, required=True)


VariantHitPageSchema = page_of(VariantHitSchema, "VariantHitPageSchema")


class VariantCreateSchema(StrictSchema):
    sku = Text(required=True, validate=validate.Length(min=1, max=120))
    title = Text(validate=validate.Length(max=500))
    # Absent or null: the product's base price (422 when it has none).
    price = Price(allow_none=True)
    currency = fields.String(validate=validate.Regexp(r"^[A-Z]{3}$"))
    available_quantity = fields.Integer(validate=validate.Range(min=0, max=2**31 - 1))
    barcode = Text(allow_none=True, validate=validate.Length(max=64))
    attributes = fields.Dict(
        keys=Text(validate=validate.Length(max=100)),
        values=Text(validate=validate.Length(max=2000)),
    )


class VariantUpdateSchema(VariantCreateSchema):
    sku = Text(validate=validate.Length(min=1, max=120))


class ListingSchema(Timestamps):
    product_id = fields.UUID(required=True)
    store_id = fields.UUID(required=True)
    status = fields.Enum(ListingStatus, by_value=True, required=True)
    external_id = Text(allow_none=True, required=True)
    external_url = Text(allow_none=True, required=True)
    platform_data = fields.Dict(required=True)
    last_error = Text(allow_none=True, required=True)
    published_at = fields.AwareDateTime(allow_none=True, required=True)
    last_synced_at = fields.AwareDateTime(allow_none=True, required=True)
    stock_rules = fields.Dict(required=True)


ListingPageSchema = page_of(ListingSchema, "ListingPageSchema")


class ListingQuerySchema(PageQuerySchema):
    store_id = fields.UUID(load_default=None)
    product_id = fields.UUID(load_default=None)
    status = fields.Enum(ListingStatus, by_value=True, load_default=None)


class ListingCreateSchema(StrictSchema):
    product_id = fields.UUID(required=True)
    store_id = fields.UUID(required=True)


class DeleteOutcomeSchema(OutcomeSchema):
    """A product or variant delete that did not finish at once (202): the approval it waits
    for (``kind`` approval), or (``kind`` jobs) the jobs that take it off its live listings
    first, with the listings whose platform refused to take them down (``refused``, each
    ``failed`` with its ``last_error``)."""

    kind = Text(required=True, validate=validate.OneOf(["approval", "jobs"]))
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    refused = fields.List(fields.Nested(ListingSchema), required=True)
