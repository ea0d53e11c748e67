"""Listings: a product on a store, published, updated and delisted through jobs."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.outcomes import outcome
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import Role
from fusion.catalog import service as catalog
from fusion.catalog.models import Listing, Product
from fusion.inventory import channels
from fusion.stores.models import Store
from schemas.approvals import OutcomeSchema
from schemas.catalog import (
    ListingCreateSchema,
    ListingPageSchema,
    ListingQuerySchema,
    ListingSchema,
)
from schemas.inventory import ListingUpdateSchema
from schemas.job_views import IdempotencyHeaderSchema

blp = Blueprint("listings", __name__, url_prefix="/orgs", description="Listings on stores.")


@blp.route("/<uuid:org_id>/listings")
class Listings(MethodView):
    @blp.arguments(ListingQuerySchema, location="query")
    @blp.response(200, ListingPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """Listings, filtered by store, product or status."""
        filters = {k: query[k] for k in ("store_id", "product_id", "status")}
        return page(
            tx(),
            Listing,
            limit=query["limit"],
            cursor=query["cursor"],
            filters=filters,
            references={"store_id": Store, "product_id": Product},
        )

    @blp.arguments(ListingCreateSchema)
    @blp.response(201, ListingSchema)
    @org_scope(Role.OPERATOR)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> Listing:
        """A draft listing of one of your products on one of your stores."""
        return catalog.create_listing(tx(), access(), **body)


@blp.route("/<uuid:org_id>/listings/<uuid:listing_id>")
class ListingView(MethodView):
    @blp.response(200, ListingSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, listing_id: uuid.UUID) -> Listing:
        """One listing."""
        return catalog.get_listing(tx(), listing_id)

    @blp.arguments(ListingUpdateSchema)
    @blp.response(200, ListingSchema)
    @org_scope(Role.OPERATOR)
    def patch(self, body: dict[str, Any], org_id: uuid.UUID, listing_id: uuid.UUID) -> Listing:
        """Set the listing's stock rules (they override its store's, key by key); the
        figures they change are pushed at once."""
        return channels.set_listing_rules(tx(), access(), listing_id, body["stock_rules"])


def _action_view(action: str, summary: str) -> None:
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.response(202, OutcomeSchema)
    @org_scope(Role.OPERATOR)
    def view(
        org_id: uuid.UUID, listing_id: uuid.UUID, idempotency_key: str | None = None
    ) -> dict[str, object]:
        return outcome(
            catalog.listing_action(
                tx(), access(), listing_id, action, idempotency_key=idempotency_key
            )
        )

    view.__doc__ = summary
    view.__name__ = f"{action}_listing"
    blp.post(f"/<uuid:org_id>/listings/<uuid:listing_id>/{action}")(view)


_action_view("publish", "Publish the listing: 202 with the job, or with the approval it needs.")
_action_view("update", "Push the product's changes to the store: 202 with the job or approval.")
_action_view("delist", "Take the listing down: 202 with the job, or the approval it needs.")
