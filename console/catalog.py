"""Products and stock (each SKU's figure and what every channel was sent of it, with the
inline stock edit), and Publishing (products x stores, publish, update, delist: one cell at a
time or a selection of them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.pagination import page as keyset
from console import forms
from console.scope import access, back, bp, page, tx
from fusion.approvals.models import Approval, ApprovalStatus
from fusion.auth.models import Role
from fusion.catalog import deletes, search
from fusion.catalog import service as catalog
from fusion.catalog.models import Listing, Product, ProductStatus, ProductVariant
from fusion.errors import Conflict, NotFound, ValidationFailed
from fusion.inventory import channels, manual
from fusion.inventory.channels import ChannelStock
from fusion.jobs.models import Job
from fusion.stores.models import Store

PRODUCTS_PER_PAGE = 20
SELECTION_CAP = 200  # cells one selection acts on (a page holds 20 products x the stores)


@dataclass(frozen=True)
class Row:
    """One SKU: the hub's figure, its ETag, and per store what that channel was sent."""

    variant: ProductVariant
    etag: str
    channels: dict[uuid.UUID, ChannelStock]


def _products() -> dict[str, object]:
    return keyset(
        tx(),
        Product,
        limit=PRODUCTS_PER_PAGE,
        cursor=forms.cursor(),
        filters={"status": forms.choice("status", ProductStatus)},
    )


def _listings(product_ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, uuid.UUID], Listing]:
    found = tx().scalars(select(Listing).where(Listing.product_id.in_(product_ids)))
    return {(item.product_id, item.store_id): item for item in found}


@bp.get("/orgs/<uuid:org_id>/products")
@page(Role.VIEWER)
def products_page(org_id: uuid.UUID) -> str:
    found = _products()
    products: list[Product] = found["items"]  # type: ignore[assignment]
    stores = list(tx().scalars(select(Store).order_by(Store.name)))
    listings = _listings([p.id for p in products])
    by_listing = {
        listing.id: {c.sku: c for c in channels.listing_stock(tx(), listing.id)}
        for listing in listings.values()
    }
    variants = tx().scalars(
        select(ProductVariant)
        .where(ProductVariant.product_id.in_([p.id for p in products]))
        .order_by(ProductVariant.sku)
    )
    rows: dict[uuid.UUID, list[Row]] = {}
    for variant in variants:
        per_store = {}
        for store in stores:
            listing = listings.get((variant.product_id, store.id))
            if listing is not None and variant.sku in by_listing[listing.id]:
                per_store[store.id] = by_listing[listing.id][variant.sku]
        rows.setdefault(variant.product_id, []).append(
            Row(variant, manual.stock_etag(variant), per_store)
        )
    return render_template(
        "console/products.html",
        found=found,
        products=products,
        stores=stores,
        rows=rows,
        statuses=list(ProductStatus),
        more=forms.query_without("cursor"),
        hits=_sku_hits(),
    )


def _sku_hits() -> list[search.VariantHit] | None:
    """The org-wide SKU search (as GET /orgs/{org}/variants?q=): None without a term."""
    term = forms.text("sku_q", source="args")
    if not term:
        return None
    found = tx().scalars(
        select(ProductVariant)
        .where(*search.matching(sku=None, q=term))
        .order_by(ProductVariant.sku)
        .limit(forms.PAGE_SIZE)
    )
    return search.with_products(tx(), list(found))


@bp.post("/orgs/<uuid:org_id>/variants/<uuid:variant_id>/stock")
@page(Role.OPERATOR)
def set_stock(org_id: uuid.UUID, variant_id: uuid.UUID) -> Response:
    """PATCH /orgs/{org}/variants/{id} with ``available_quantity`` and ``If-Match``: refused
    (the figure shown is stale) when the stock changed since the page was drawn."""
    variant = manual.update_variant(
        tx(),
        access(),
        variant_id,
        if_match=forms.text("etag", required=True),
        available_quantity=forms.integer("available_quantity"),
    )
    flash(f"{variant.sku}: {variant.available_quantity} available.", "ok")
    return back("console.products_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/products/<uuid:product_id>/delete")
@page(Role.OPERATOR)
def delete_product(org_id: uuid.UUID, product_id: uuid.UUID) -> Response:
    outcome = deletes.delete_product(tx(), access(), product_id)
    if isinstance(outcome, Approval):
        flash("The delete waits for an owner's approval.", "ok")
    elif outcome.deleted:
        flash("Product deleted.", "ok")
    else:
        flash("The product goes once its listings are taken down.", "ok")
    return back("console.products_page", org_id=org_id)


@bp.get("/orgs/<uuid:org_id>/publishing")
@page(Role.VIEWER)
def publishing_page(org_id: uuid.UUID) -> str:
    found = _products()
    products: list[Product] = found["items"]  # type: ignore[assignment]
    listings = _listings([p.id for p in products])
    waiting = set(
        tx().scalars(
            select(Approval.resource_id).where(
                Approval.status == ApprovalStatus.PENDING,
                Approval.resource_type == "listing",
                Approval.resource_id.in_([item.id for item in listings.values()]),
            )
        )
    )
    return render_template(
        "console/publishing.html",
        found=found,
        products=products,
        stores=list(tx().scalars(select(Store).order_by(Store.name))),
        listings=listings,
        waiting=waiting,
        statuses=list(ProductStatus),
        more=forms.query_without("cursor"),
    )


@bp.post("/orgs/<uuid:org_id>/publishing")
@page(Role.OPERATOR)
def list_product(org_id: uuid.UUID) -> Response:
    """A draft listing of the product on the store, asked to publish at once."""
    listing = catalog.create_listing(
        tx(),
        access(),
        product_id=forms.an_id("product_id", source="form", required=True),  # type: ignore[arg-type]
        store_id=forms.an_id("store_id", source="form", required=True),  # type: ignore[arg-type]
    )
    return _act(org_id, listing.id, "publish")


@bp.post("/orgs/<uuid:org_id>/listings/<uuid:listing_id>/<any(publish, update, delist):action>")
@page(Role.OPERATOR)
def listing_action(org_id: uuid.UUID, listing_id: uuid.UUID, action: str) -> Response:
    return _act(org_id, listing_id, action)


def _act(org_id: uuid.UUID, listing_id: uuid.UUID, action: str) -> Response:
    result = catalog.listing_action(tx(), access(), listing_id, action)
    if isinstance(result, Job):
        flash(f"{action.capitalize()}: job {result.id} queued.", "ok")
    else:
        flash(f"{action.capitalize()} waits for an owner's approval.", "ok")
    return back("console.publishing_page", org_id=org_id)


def _cells() -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The ticked cells (``cells``: "<product id>:<store id>"), at most SELECTION_CAP."""
    raw = request.form.getlist("cells")
    if not raw:
        raise ValidationFailed(fields={"cells": ["Tick at least one cell."]})
    if len(raw) > SELECTION_CAP:
        raise ValidationFailed(fields={"cells": [f"At most {SELECTION_CAP} at once."]})
    try:
        pairs = [tuple(uuid.UUID(part) for part in value.split(":", 1)) for value in raw]
    except ValueError:
        raise ValidationFailed(fields={"cells": ["Not a product and store id pair."]}) from None
    if any(len(pair) != 2 for pair in pairs):
        raise ValidationFailed(fields={"cells": ["Not a product and store id pair."]})
    return list(dict.fromkeys((p[0], p[1]) for p in pairs))


@bp.post("/orgs/<uuid:org_id>/publishing/selection")
@page(Role.OPERATOR)
def publish_selection(org_id: uuid.UUID) -> Response:
    """Publish, update or delist every ticked cell, each as its own button would (the same
    service, approval where the org's policy asks, one audit entry per listing); a cell whose
    listing's status does not allow the action is skipped, and the message says how many."""
    action = request.form.get("do", "")
    if action not in ("publish", "update", "delist"):
        raise ValidationFailed(fields={"do": ["Must be one of: publish, update, delist."]})
    cells = _cells()
    found = {
        (item.product_id, item.store_id): item.id
        for item in tx().scalars(
            select(Listing).where(Listing.product_id.in_({p for p, _ in cells}))
        )
    }
    queued = waiting = skipped = 0
    for product_id, store_id in cells:
        try:
            with tx().begin_nested():  # a refused cell leaves nothing behind
                listing_id = found.get((product_id, store_id))
                if listing_id is None:
                    if action != "publish":
                        raise Conflict("Not listed.")
                    listing_id = catalog.create_listing(
                        tx(), access(), product_id=product_id, store_id=store_id
                    ).id
                result = catalog.listing_action(tx(), access(), listing_id, action)
        except (Conflict, NotFound):
            skipped += 1
            continue
        if isinstance(result, Job):
            queued += 1
        else:
            waiting += 1
    flash(
        f"{action.capitalize()}: {queued} job(s) queued, {waiting} waiting for an owner's "
        f"approval, {skipped} skipped (not in a state to {action}).",
        "ok",
    )
    return back("console.publishing_page", org_id=org_id)
