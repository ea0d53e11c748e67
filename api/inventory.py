"""Stock: a variant's figure and ledger, manual adjustments, and each listing's channel
figures (what it should show, was sent, and holds)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import Role
from fusion.catalog import service as catalog
from fusion.inventory import channels, manual
from fusion.inventory.models import StockMovement
from fusion.stores import service as stores
from schemas.inventory import (
    AdjustmentSchema,
    ListingStockSchema,
    StockChangeSchema,
    StockQuerySchema,
    VariantStockSchema,
)

blp = Blueprint("inventory", __name__, url_prefix="/orgs", description="Stock and its ledger.")


@blp.route("/<uuid:org_id>/variants/<uuid:variant_id>/stock")
class VariantStock(MethodView):
    @blp.arguments(StockQuerySchema, location="query")
    @blp.response(200, VariantStockSchema)
    @org_scope(Role.VIEWER)
    def get(
        self, query: dict[str, Any], org_id: uuid.UUID, variant_id: uuid.UUID
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The variant's available figure and its stock movements, newest first."""
        variant = catalog.get_variant(tx(), variant_id)
        movements = page(
            tx(),
            StockMovement,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"variant_id": variant.id},
        )
        etag = manual.stock_etag(variant)
        body = {
            "variant_id": variant.id,
            "sku": variant.sku,
            "available_quantity": variant.available_quantity,
            "etag": etag,
            **movements,
        }
        return body, {"ETag": etag}


@blp.route("/<uuid:org_id>/variants/<uuid:variant_id>/stock-adjustments")
class StockAdjustments(MethodView):
    @blp.arguments(AdjustmentSchema)
    @blp.response(201, StockChangeSchema)
    @org_scope(Role.OPERATOR)
    def post(
        self, body: dict[str, Any], org_id: uuid.UUID, variant_id: uuid.UUID
    ) -> tuple[manual.StockChange, dict[str, str]]:
        """Add or remove units (a return to shelf, damage, a correction) with the reason: a
        ledger movement, audited, pushed to every channel at once. 409 (naming the SKU and
        the figure) when it would go below zero."""
        change = manual.adjust(tx(), access(), variant_id, **body)
        return change, {"ETag": change.etag}


@blp.route("/<uuid:org_id>/listings/<uuid:listing_id>/stock")
class ListingStock(MethodView):
    @blp.response(200, ListingStockSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, listing_id: uuid.UUID) -> dict[str, Any]:
        """Per SKU: the hub's figure, what the channel should show after the rules, what it
        was last sent and when it confirmed, what it held when last read, and drift."""
        items = channels.listing_stock(tx(), listing_id)
        listing = catalog.get_listing(tx(), listing_id)
        return {
            "listing_id": listing.id,
            "store_id": listing.store_id,
            "stock_rules": listing.stock_rules,
            "store_stock_rules": stores.get_store(tx(), listing.store_id).stock_rules,
            "items": items,
        }
