"""Schemas every resource shares: problem details, pagination, the strict base for writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

MAX_PAGE = 100
DEFAULT_PAGE = 50


STORABLE = r"^[^\u0000\ud800-\udfff]*$"


class Text(fields.String):
    """A string Postgres can store: no NUL characters or lone surrogates (declared in the
    OpenAPI document as a pattern, so clients know before they send)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        extra = [validators] if callable(validators) else list(validators or [])
        storable = validate.Regexp(STORABLE, error="Contains characters that cannot be stored.")
        super().__init__(*args, validate=[storable, *extra], **kwargs)


class Money(fields.Decimal):
    """An amount in a response: a decimal string ("10.00"), never a float."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(as_string=True, metadata={"type": "string", "format": "decimal"}, **kwargs)


class Moment(fields.AwareDateTime):
    """An input instant, normalised to UTC (Postgres refuses some offsets Python accepts)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Not a representable date and time.") from None


def _unstorable(value: Any) -> bool:
    """Text Postgres cannot store: NUL characters and lone UTF-16 surrogates."""
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_unstorable(v) for v in value)
    return False


class StrictSchema(Schema):
    """Input schemas reject unknown fields: ``org_id``, ``role`` and friends cannot be slipped
    into a write (mass assignment). Text that cannot be stored is a field error, not a 500."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _refuse_unstorable_text(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            bad = {
                str(k): ["Contains characters that cannot be stored (NUL or a lone surrogate)."]
                for k, v in data.items()
                if _unstorable(v) or _unstorable(k)
            }
            if bad:
                raise ValidationError(bad)
        return data


class ProblemSchema(Schema):
    """RFC 9457 problem details, with field-level ``errors``. A problem may carry extension
    members (RFC 9457 section 3.2), e.g. a 409's current figure or the job already made."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.Raw())


class ClampedLimit(fields.Integer):
    """A page size: above the maximum is clamped (not refused), below 1 is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number = super()._deserialize(value, attr, data, **kwargs)
        return min(int(number), MAX_PAGE)


class PageQuerySchema(StrictSchema):
    limit = ClampedLimit(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1),
        metadata={
            "description": f"Page size (default {DEFAULT_PAGE}; above {MAX_PAGE} is "
            f"clamped to {MAX_PAGE})."
        },
    )
    cursor = fields.String(
        load_default=None,
        validate=validate.Length(max=200),
        metadata={"description": "Opaque cursor from the previous page's next_cursor."},
    )


class PageSchema(Schema):
    next_cursor = fields.String(allow_none=True, required=True)


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    """A page schema with ``items`` of ``item_schema``."""
    return type(
        name,
        (PageSchema,),
        {"items": fields.List(fields.Nested(item_schema), required=True)},
    )


class Timestamps(Schema):
    id = fields.UUID(dump_only=True, required=True)
    created_at = fields.AwareDateTime(dump_only=True, required=True)
    updated_at = fields.AwareDateTime(dump_only=True, required=True)
