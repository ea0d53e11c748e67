"""Products and their variants (SKUs with the one stock figure the hub holds)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from api.outcomes import deletion_accepted
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import Role
from fusion.catalog import deletes, search
from fusion.catalog import service as catalog
from fusion.catalog.models import Product, ProductVariant
from fusion.inventory import manual
from schemas.catalog import (
    DeleteOutcomeSchema,
    ProductCreateSchema,
    ProductPageSchema,
    ProductQuerySchema,
    ProductSchema,
    ProductUpdateSchema,
    VariantCreateSchema,
    VariantHitPageSchema,
    VariantPageSchema,
    VariantQuerySchema,
    VariantSchema,
    VariantSearchQuerySchema,
    VariantUpdateSchema,
)
from schemas.inventory import ETAG_HEADER, IfMatchHeaderSchema

blp = Blueprint("products", __name__, url_prefix="/orgs", description="The catalog.")


@blp.route("/<uuid:org_id>/products")
class Products(MethodView):
    @blp.arguments(ProductQuerySchema, location="query")
    @blp.response(200, ProductPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The catalog, newest first."""
        return page(
            tx(),
            Product,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"status": query["status"], "vendor": query["vendor"]},
        )

    @blp.arguments(ProductCreateSchema)
    @blp.response(201, ProductSchema)
    @org_scope(Role.OPERATOR)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> Product:
        """Add a product."""
        return catalog.create_product(tx(), access(), **body)


@blp.route("/<uuid:org_id>/products/<uuid:product_id>")
class ProductView(MethodView):
    @blp.response(200, ProductSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, product_id: uuid.UUID) -> Product:
        """One product."""
        return catalog.get_product(tx(), product_id)

    @blp.arguments(ProductUpdateSchema)
    @blp.response(200, ProductSchema)
    @org_scope(Role.OPERATOR)
    def patch(self, body: dict[str, Any], org_id: uuid.UUID, product_id: uuid.UUID) -> Product:
        """Change a product."""
        return catalog.update_product(tx(), access(), product_id, **body)

    @blp.response(204)
    @blp.alt_response(
        202,
        schema=DeleteOutcomeSchema,
        description="Waiting for approval, or for its listings to be taken down.",
    )
    @org_scope(Role.OPERATOR)
    def delete(self, org_id: uuid.UUID, product_id: uuid.UUID) -> Response | None:
        """Delete a product. Without live listings it goes at once (204). Otherwise 202 with
        one delist job per live listing: the product is `deleting` and goes when the last
        listing is down; a listing its platform refuses to take down stays `failed` with the
        reason (listed in `refused`), and the product waits for it (deleting it again retries).
        An operator's delete first asks for approval: 202 with it."""
        return deletion_accepted(deletes.delete_product(tx(), access(), product_id))


@blp.route("/<uuid:org_id>/products/<uuid:product_id>/variants")
class Variants(MethodView):
    @blp.arguments(VariantQuerySchema, location="query")
    @blp.response(200, VariantPageSchema)
    @org_scope(Role.VIEWER)
    def get(
        self, query: dict[str, Any], org_id: uuid.UUID, product_id: uuid.UUID
    ) -> dict[str, Any]:
        """The product's variants."""
        catalog.get_product(tx(), product_id)
        return page(
            tx(),
            ProductVariant,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"product_id": product_id, "sku": query["sku"]},
        )

    @blp.arguments(VariantCreateSchema)
    @blp.response(201, VariantSchema)
    @org_scope(Role.OPERATOR)
    def post(
        self, body: dict[str, Any], org_id: uuid.UUID, product_id: uuid.UUID
    ) -> ProductVariant:
        """Add a variant (a SKU, unique in the organisation); its opening stock is the first
        movement of its ledger."""
        return manual.create_variant(tx(), access(), product_id, **body)


@blp.route("/<uuid:org_id>/variants")
class VariantSearch(MethodView):
    @blp.arguments(VariantSearchQuerySchema, location="query")
    @blp.response(200, VariantHitPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """Every product's variants, newest first: by SKU prefix (`sku`) and/or text
        (`q`), each with its product and its stock."""
        found = page(
            tx(),
            ProductVariant,
            limit=query["limit"],
            cursor=query["cursor"],
            stmt=select(ProductVariant).where(*search.matching(sku=query["sku"], q=query["q"])),
        )
        return {**found, "items": search.with_products(tx(), found["items"])}


@blp.route("/<uuid:org_id>/variants/<uuid:variant_id>")
class VariantView(MethodView):
    @blp.response(200, VariantSchema, headers=ETAG_HEADER)
    @org_scope(Role.VIEWER)
    def get(
        self, org_id: uuid.UUID, variant_id: uuid.UUID
    ) -> tuple[ProductVariant, dict[str, str]]:
        """One variant, with its stock's ETag (for a PATCH sent with `If-Match`)."""
        variant = catalog.get_variant(tx(), variant_id)
        return variant, {"ETag": manual.stock_etag(variant)}

    @blp.arguments(IfMatchHeaderSchema, location="headers", as_kwargs=True)
    @blp.arguments(VariantUpdateSchema)
    @blp.response(200, VariantSchema, headers=ETAG_HEADER)
    @org_scope(Role.OPERATOR)
    def patch(
        self,
        body: dict[str, Any],
        org_id: uuid.UUID,
        variant_id: uuid.UUID,
        if_match: str | None = None,
    ) -> tuple[ProductVariant, dict[str, str]]:
        """Change a variant, its price or its available quantity (an absolute set, a
        manual-set movement of its ledger, pushed to every channel at once). Sent with
        `If-Match` (the ETag of `GET`), it is refused with 409, the current figure and
        ETag, when the stock changed since."""
        variant = manual.update_variant(tx(), access(), variant_id, if_match=if_match, **body)
        return variant, {"ETag": manual.stock_etag(variant)}

    @blp.response(204)
    @blp.alt_response(
        202,
        schema=DeleteOutcomeSchema,
        description="Waiting for approval, or for its listings to be updated without it.",
    )
    @org_scope(Role.OPERATOR)
    def delete(self, org_id: uuid.UUID, variant_id: uuid.UUID) -> Response | None:
        """Delete a variant. When its product has no live listing it goes at once (204).
        Otherwise 202 with one update job per live listing, pushing the product without it:
        the variant shows `deleting_at` and its row goes when no listing carries it. 409 for
        the last variant of a listed product (delete the product). An operator's delete
        first asks for approval: 202 with it."""
        return deletion_accepted(deletes.delete_variant(tx(), access(), variant_id))
