"""A store's catalog rules: its price rule and its mappings of the hub's categories and
variant attributes to the platform's (``fusion.stores.catalog_rules``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, validate

from fusion.stores.catalog_rules import (
    ANY_CATEGORY,
    MAX_ENTRIES,
    MAX_NAME,
    MAX_PRICE,
    CatalogRules,
    Rounding,
)
from schemas.common import Money, StrictSchema, Text

NAME = Text(validate=validate.Length(min=1, max=MAX_NAME))
ENTRIES = validate.Length(max=MAX_ENTRIES)


def _markup_in_range(value: Decimal) -> None:
    if not Decimal(-100) <= value <= Decimal(10_000):
        raise ValidationError("Must be between -100 and 10000.")


def _price_in_range(value: Decimal) -> None:
    if not Decimal(0) <= value <= MAX_PRICE:
        raise ValidationError(f"Must be between 0 and {MAX_PRICE}.")
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError("At most two decimals: an override is the price as it is.")


class PricingSchema(StrictSchema):
    """What each SKU sells at on the store: its override there as it is, else the hub's price
    (the variant's, or its product's base price) marked up and rounded."""

    markup_percent = fields.Decimal(
        as_string=True,
        allow_nan=False,
        load_default=Decimal(0),
        validate=_markup_in_range,
        metadata={"description": "25 sells a 10.00 SKU at 12.50; -100 to 10000."},
    )
    rounding = Text(
        load_default=Rounding.CENTS.value,
        validate=validate.OneOf([r.value for r in Rounding]),
        metadata={
            "description": "cents (nearest cent), up_to_99 (up to the next .99), "
            "up_to_whole (up to the next whole amount)."
        },
    )
    overrides = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=120)),
        values=fields.Decimal(as_string=True, allow_nan=False, validate=_price_in_range),
        load_default=dict,
        validate=ENTRIES,
        metadata={"description": "SKU -> its exact price on this store (not marked up)."},
    )


class CatalogRulesSchema(StrictSchema):
    pricing = fields.Nested(PricingSchema, load_default=dict)
    categories = fields.Dict(
        keys=NAME,
        values=NAME,
        load_default=dict,
        validate=ENTRIES,
        metadata={
            "description": "The hub's category -> the platform's (Shopify: product type; "
            f"Etsy: taxonomy_id; Amazon: product type); {ANY_CATEGORY!r} for every other "
            "category. Etsy and Amazon require one: a product mapped to none fails its "
            "listing naming the field."
        },
    )
    attributes = fields.Dict(
        keys=NAME,
        values=NAME,
        load_default=dict,
        validate=ENTRIES,
        metadata={
            "description": "The hub's variant attribute -> the platform's attribute or option "
            "name; attributes not named are not sent."
        },
    )


class PricingShownSchema(StrictSchema):
    markup_percent = Money(required=True)
    rounding = Text(required=True)
    overrides = fields.Dict(keys=Text(), values=Money(), required=True)


class CatalogRulesShownSchema(StrictSchema):
    """A store's catalog rules as they are kept, every part written out (amounts as decimal
    strings)."""

    pricing = fields.Nested(PricingShownSchema, required=True)
    categories = fields.Dict(keys=Text(), values=Text(), required=True)
    attributes = fields.Dict(keys=Text(), values=Text(), required=True)


def shown_rules(stored: dict[str, Any] | None) -> dict[str, Any]:
    """A store's stored rules with every part written out."""
    return CatalogRules.parse(stored).as_dict()
