"""Stores: connected with credentials that go in and never come out."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from fusion.plugins.registry import plugin_slugs
from fusion.stores.models import StoreStatus
from schemas.catalog_rules import CatalogRulesSchema, shown_rules
from schemas.common import PageQuerySchema, StrictSchema, Text, Timestamps, page_of
from schemas.inventory import StockRulesSchema
from schemas.store_settings import load_settings, shown_settings

SETTINGS_HELP = (
    "Settings of the platform's plugin, by name (GET /orgs/{org}/plugins/{slug} lists them "
    "with their types); an unknown name or a value of the wrong type is refused."
)


class StoreSchema(Timestamps):
    platform = Text(required=True)
    name = Text(required=True)
    external_id = Text(required=True)
    base_url = Text(allow_none=True, required=True)
    status = fields.Enum(StoreStatus, by_value=True, required=True)
    rate_limit_config = fields.Dict(required=True)
    settings = fields.Method(
        "_settings",
        required=True,
        metadata={
            "type": "object",
            "description": "Every setting the platform's plugin declares, with the store's "
            "value or the default (GET /orgs/{org}/plugins/{slug} lists them).",
        },
    )
    state = fields.Dict(
        required=True,
        metadata={"description": "What the hub records about the store (read only)."},
    )
    stock_rules = fields.Dict(required=True)
    last_synced_at = fields.AwareDateTime(allow_none=True, required=True)
    has_credentials = fields.Method("_has_credentials", required=True)
    has_webhook_secret = fields.Method("_has_webhook_secret", required=True)
    catalog_rules = fields.Method(
        "_catalog_rules",
        required=True,
        metadata={"type": "object", "description": "GET .../catalog-rules describes them."},
    )

    def _catalog_rules(self, store: Any) -> dict[str, Any]:
        return shown_rules(store.catalog_rules)

    def _settings(self, store: Any) -> dict[str, Any]:
        return shown_settings(store.platform, store.settings or {})

    def _has_credentials(self, store: object) -> bool:
        return getattr(store, "credentials_encrypted", None) is not None

    def _has_webhook_secret(self, store: object) -> bool:
        return getattr(store, "webhook_secret_encrypted", None) is not None


class RateLimitStateSchema(Schema):
    """A store's rate-limit bucket as the workers last wrote it (every few seconds while they
    call the platform, and after each throttle); the figures are null before the first call."""

    tokens = fields.Float(allow_none=True, required=True)
    capacity = fields.Float(allow_none=True, required=True)
    refill_rate = fields.Float(
        allow_none=True, required=True, metadata={"description": "Tokens per second."}
    )
    fill = fields.Float(
        allow_none=True, required=True, metadata={"description": "tokens / capacity, 0 to 1."}
    )
    source = Text(
        allow_none=True,
        required=True,
        metadata={
            "description": "hub (the configured limits) or platform (corrected by what the "
            "platform said)."
        },
    )
    updated_at = Text(allow_none=True, required=True, metadata={"format": "date-time"})
    last_throttled_at = Text(allow_none=True, required=True, metadata={"format": "date-time"})
    throttles_last_hour = fields.Integer(
        allow_none=True,
        required=True,
        metadata={
            "description": "Calls throttled (a platform 429, or the bucket too short for a "
            "brief wait) in the last 60 minutes; null when the broker cannot be read."
        },
    )


class StoreDetailSchema(StoreSchema):
    rate_limit = fields.Nested(RateLimitStateSchema, required=True)


StorePageSchema = page_of(StoreSchema, "StorePageSchema")


class LeftLiveSchema(StrictSchema):
    """A listing left on sale on its platform when the hub stopped managing its store."""

    listing_id = fields.UUID(required=True)
    product_id = fields.UUID(required=True)
    external_id = Text(required=True)
    url = Text(allow_none=True, required=True)


LEFT_LIVE = fields.List(fields.Nested(LeftLiveSchema), required=True)


class StoreChangeSchema(StoreSchema):
    """A changed store; disconnecting it lists the listings it left live and unmanaged (the
    hub never takes a merchant's products down with a store)."""

    left_live_and_unmanaged = LEFT_LIVE


class StoreDeletedSchema(StrictSchema):
    """A deleted store and the listings it left on sale on the platform, no longer managed."""

    store_id = fields.UUID(required=True)
    left_live_and_unmanaged = LEFT_LIVE


class StoreQuerySchema(PageQuerySchema):
    platform = Text(load_default=None, validate=validate.Length(max=40))
    status = fields.Enum(StoreStatus, by_value=True, load_default=None)


class RateLimitConfigSchema(StrictSchema):
    """Overrides of the plugin's limits for one store (e.g. a higher plan)."""

    requests_per_second = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    burst_size = fields.Float(validate=validate.Range(min=1))
    safety_margin = fields.Float(validate=validate.Range(min=0, max=0.5))


class StoreConnectSchema(StrictSchema):
    platform = Text(required=True, validate=validate.OneOf(plugin_slugs()))
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    external_id = Text(required=True, validate=validate.Length(min=1, max=255))
    base_url = fields.Url(
        load_default=None,
        validate=validate.Length(max=500),
        schemes={"http", "https"},
        require_tld=False,
    )
    credentials = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=100)),
        values=Text(validate=validate.Length(min=1, max=4096)),
        validate=validate.Length(min=1, max=20),
        metadata={"minProperties": 1, "maxProperties": 20},
        required=True,
        load_only=True,
    )
    webhook_secret = Text(load_default=None, load_only=True, validate=validate.Length(max=1024))
    rate_limit_config = fields.Nested(RateLimitConfigSchema, load_default=None)
    stock_rules = fields.Nested(StockRulesSchema)
    catalog_rules = fields.Nested(CatalogRulesSchema)
    settings = fields.Dict(
        keys=Text(),
        load_default=None,
        metadata={"description": SETTINGS_HELP},
    )

    @post_load
    def _platform_settings(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # Which settings are valid depends on the platform, known only once it is loaded.
        data["store_settings"] = load_settings(data["platform"], data.pop("settings") or {})
        return data


# The statuses a person sets; ``needs_reauth`` is the hub's (new credentials clear it).
SETTABLE_STATUSES = (StoreStatus.ACTIVE, StoreStatus.PAUSED, StoreStatus.DISCONNECTED)
_SETTABLE = "Must be one of: " + ", ".join(s.value for s in SETTABLE_STATUSES) + "."


class StoreUpdateSchema(StrictSchema):
    name = Text(validate=validate.Length(min=1, max=200))
    status = fields.Enum(
        StoreStatus,
        by_value=True,
        validate=validate.OneOf(SETTABLE_STATUSES, error=_SETTABLE),
        error_messages={"unknown": _SETTABLE},
    )
    stock_rules = fields.Nested(StockRulesSchema)
    settings = fields.Dict(
        keys=Text(),
        metadata={"description": SETTINGS_HELP + " Merged into the store's: null unsets one."},
    )


class ConnectionTestSchema(StrictSchema):
    ok = fields.Boolean(required=True)
    detail = Text(required=True)


class CredentialsSchema(StrictSchema):
    credentials = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=100)),
        values=Text(validate=validate.Length(min=1, max=4096)),
        validate=validate.Length(min=1, max=20),
        metadata={"minProperties": 1, "maxProperties": 20},
        load_only=True,
    )
    webhook_secret = Text(load_only=True, validate=validate.Length(min=1, max=1024))
