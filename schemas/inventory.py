"""Stock: the ledger of a variant, manual adjustments, per-channel rules and what each
channel holds."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from fusion.inventory.manual import MAX_ADJUSTMENT, MAX_REASON
from fusion.inventory.models import MovementKind
from fusion.stores.stock_rules import MAX_RULE
from schemas.common import PageQuerySchema, StrictSchema, Text, Timestamps


class MovementSchema(Timestamps):
    variant_id = fields.UUID(allow_none=True, required=True)
    sku = Text(required=True)
    kind = fields.Enum(MovementKind, by_value=True, required=True)
    delta = fields.Integer(required=True)
    on_hand_after = fields.Integer(required=True)
    actor = Text(required=True)
    job_id = fields.UUID(allow_none=True, required=True)
    order_id = fields.UUID(allow_none=True, required=True)
    reason = Text(required=True)


class StockQuerySchema(PageQuerySchema):
    pass


class VariantStockSchema(StrictSchema):
    """A variant's figure and one page of its movements, newest first."""

    variant_id = fields.UUID(required=True)
    sku = Text(required=True)
    available_quantity = fields.Integer(required=True)
    etag = Text(required=True)
    items = fields.List(fields.Nested(MovementSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class AdjustmentSchema(StrictSchema):
    delta = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=-MAX_ADJUSTMENT, max=MAX_ADJUSTMENT),
        metadata={"description": "Units added (negative: removed); not zero."},
    )
    reason = Text(required=True, validate=validate.Length(min=1, max=MAX_REASON))

    @validates("delta")
    def _not_zero(self, value: int, **kwargs: Any) -> None:
        if value == 0:
            raise ValidationError("Must not be zero.")

    @validates("reason")
    def _not_blank(self, value: str, **kwargs: Any) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")


class StockChangeSchema(StrictSchema):
    movement = fields.Nested(MovementSchema, required=True)
    available_quantity = fields.Integer(required=True)
    etag = Text(required=True)


def _rule(top: int, description: str) -> fields.Integer:
    return fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=0, max=top),
        metadata={"description": description},
    )


class StockRulesSchema(StrictSchema):
    """What a channel is shown: zero_below on the raw figure, then buffer, then
    percent_shown (rounded down), then max_shown. A listing's rules override its store's
    key by key; null or absent is no rule."""

    buffer = _rule(MAX_RULE, "Units held back from the channel.")
    max_shown = _rule(MAX_RULE, "The most the channel is shown.")
    percent_shown = _rule(100, "The percentage of the rest shown, rounded down.")
    zero_below = _rule(MAX_RULE, "Show 0 while the hub holds fewer than this.")


class ListingUpdateSchema(StrictSchema):
    stock_rules = fields.Nested(StockRulesSchema, required=True)


class ChannelStockSchema(StrictSchema):
    sku = Text(required=True)
    available = fields.Integer(required=True, metadata={"description": "The hub's figure."})
    shown = fields.Integer(required=True, metadata={"description": "After the rules."})
    last_pushed = fields.Integer(allow_none=True, required=True)
    pushed_at = fields.AwareDateTime(allow_none=True, required=True)
    confirmed_at = fields.AwareDateTime(allow_none=True, required=True)
    remote = fields.Integer(allow_none=True, required=True)
    read_at = fields.AwareDateTime(allow_none=True, required=True)
    drift = fields.Boolean(required=True)


class ListingStockSchema(StrictSchema):
    listing_id = fields.UUID(required=True)
    store_id = fields.UUID(required=True)
    stock_rules = fields.Dict(required=True, metadata={"description": "The listing's own."})
    store_stock_rules = fields.Dict(required=True)
    items = fields.List(fields.Nested(ChannelStockSchema), required=True)


class IfMatchHeaderSchema(Schema):
    # Header names are case-insensitive; webargs looks them up as written here.
    if_match = Text(
        data_key="If-Match",
        load_default=None,
        validate=validate.Length(min=1, max=500),
        metadata={"description": "The variant's ETag: refused (409) if its stock changed."},
    )


ETAG_HEADER = {
    "ETag": {
        "description": "The variant's stock version (weak): send it as If-Match.",
        "schema": {"type": "string"},
    }
}
