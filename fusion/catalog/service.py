"""The catalog (products and variants) and the listing actions that reach the platforms.

Writes are audited in the caller's transaction. A listing action (publish, update, delist)
answers with either the job that will do it or, when the org's policy or the caller's role
asks for it, the approval that must come first.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fusion.approvals import service as approvals
from fusion.approvals.models import Approval
from fusion.audit.service import audited_create, audited_update, record, snapshot
from fusion.auth.access import Access
from fusion.catalog.content import current_listing_content
from fusion.catalog.models import (
    Listing,
    ListingStatus,
    Product,
    ProductStatus,
    ProductVariant,
)
from fusion.errors import Conflict, NotFound, ValidationFailed
from fusion.jobs.models import Job
from fusion.plugins.base import Capability
from fusion.stores.models import Store

PRODUCT_FIELDS = (
    "title",
    "description",
    "vendor",
    "product_type",
    "tags",
    "status",
    "attributes",
    "category",
    "base_price",
)
VARIANT_FIELDS = (
    "product_id",
    "sku",
    "title",
    "price",
    "currency",
    "available_quantity",
    "barcode",
    "attributes",
)
LISTING_FIELDS = ("product_id", "store_id", "status", "external_id")
# What a delete may remove (fusion.catalog.deletes), with the fields its audit entry keeps.
DELETABLE = {"product": PRODUCT_FIELDS, "product_variant": VARIANT_FIELDS}
DELETE_JOB = "delete_catalog_item"

# The capability job each listing action runs (docs/plugins.md).
LISTING_JOBS = {
    "publish": Capability.CREATE_PRODUCT,
    "update": Capability.UPDATE_PRODUCT,
    "delist": Capability.DELETE_PRODUCT,
}
# Which statuses each action may start from.
LISTING_FROM = {
    "publish": {ListingStatus.DRAFT, ListingStatus.FAILED, ListingStatus.DELISTED},
    "update": {ListingStatus.PUBLISHED},
    "delist": {ListingStatus.PUBLISHED, ListingStatus.FAILED},
}


def get_product(session: Session, product_id: uuid.UUID) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product.")
    return product


def create_product(session: Session, access: Access, **fields: Any) -> Product:
    """A new product in the caller's org."""
    product = Product(org_id=access.org_id, **fields)
    audited_create(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=product,
        action="product.create",
        resource_type="product",
        fields=PRODUCT_FIELDS,
    )
    return product


def update_product(
    session: Session, access: Access, product_id: uuid.UUID, **changes: Any
) -> Product:
    """Change the given fields of a product. Raises NotFound for an unknown id, and
    ValidationFailed (``base_price``) when unsetting the base price that some of its variants
    sell at."""
    product = get_product(session, product_id)
    if "base_price" in changes and changes["base_price"] is None:
        inheriting = session.scalar(
            select(ProductVariant.sku)
            .where(ProductVariant.product_id == product_id, ProductVariant.price.is_(None))
            .limit(1)
        )
        if inheriting is not None:
            raise ValidationFailed(
                fields={"base_price": [f"variant {inheriting} has no price of its own"]}
            )
    audited_update(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=product,
        changes=changes,
        action="product.update",
        resource_type="product",
        fields=PRODUCT_FIELDS,
    )
    return product


def get_variant(session: Session, variant_id: uuid.UUID) -> ProductVariant:
    variant = session.get(ProductVariant, variant_id)
    if variant is None:
        raise NotFound("No such variant.")
    return variant


def _refuse_stock(fields: dict[str, Any]) -> None:
    # Stock changes only through the ledger, which sits above the catalog.
    if "available_quantity" in fields:
        raise ValueError("stock changes go through fusion.inventory.ledger.move")


def _check_price(product: Product, price: Any) -> None:
    # A variant without a price of its own sells at its product's base price.
    if price is None and product.base_price is None:
        raise ValidationFailed(
            fields={"price": ["required: the product has no base_price to sell the variant at"]}
        )


def _flush_unique_sku(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict("This SKU is already used in this organisation.") from None


def create_variant(
    session: Session, access: Access, product_id: uuid.UUID, **fields: Any
) -> ProductVariant:
    """A new variant of ``product_id``, holding no stock (its opening figure is the ledger's
    first movement: ``fusion.inventory.manual.create_variant``). Raises NotFound for an
    unknown product, Conflict for a SKU the org already uses, ValidationFailed (``price``) for
    a variant without a price of a product without a base price, ValueError when given
    ``available_quantity``."""
    _refuse_stock(fields)
    product = get_product(session, product_id)
    fields["price"] = fields.get("price")
    _check_price(product, fields["price"])
    variant = ProductVariant(org_id=access.org_id, product_id=product_id, **fields)
    session.add(variant)
    _flush_unique_sku(session)
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="variant.create",
        resource_type="product_variant",
        resource_id=variant.id,
        after=snapshot(variant, VARIANT_FIELDS),
    )
    return variant


def update_variant(
    session: Session, access: Access, variant_id: uuid.UUID, **changes: Any
) -> ProductVariant:
    """Change the given fields of a variant, its stock excepted (that is
    ``fusion.inventory.manual.update_variant``). Raises NotFound / Conflict (SKU taken),
    ValidationFailed (``price``) when unsetting the price of a product's variant without a
    base price, and ValueError when given ``available_quantity``."""
    _refuse_stock(changes)
    variant = get_variant(session, variant_id)
    if "price" in changes:
        _check_price(get_product(session, variant.product_id), changes["price"])
    before = snapshot(variant, VARIANT_FIELDS)
    for name, value in changes.items():
        setattr(variant, name, value)
    _flush_unique_sku(session)
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="variant.update",
        resource_type="product_variant",
        resource_id=variant.id,
        before=before,
        after=snapshot(variant, VARIANT_FIELDS),
    )
    return variant


def get_listing(session: Session, listing_id: uuid.UUID) -> Listing:
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound("No such listing.")
    return listing


def create_listing(
    session: Session, access: Access, *, product_id: uuid.UUID, store_id: uuid.UUID
) -> Listing:
    """A draft listing of a product on a store, both of the caller's org (another org's id is
    NotFound, like an unknown one). Raises Conflict if the product is already on the store."""
    get_product(session, product_id)
    if session.get(Store, store_id) is None:
        raise NotFound("No such store.")
    exists = session.scalar(
        select(Listing.id).where(Listing.product_id == product_id, Listing.store_id == store_id)
    )
    if exists is not None:
        raise Conflict("This product already has a listing on this store.")
    listing = Listing(org_id=access.org_id, product_id=product_id, store_id=store_id)
    audited_create(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=listing,
        action="listing.create",
        resource_type="listing",
        fields=LISTING_FIELDS,
    )
    return listing


def _price_and_quantity(session: Session, product_id: uuid.UUID) -> dict[str, Any]:
    rows = session.execute(
        select(
            func.coalesce(ProductVariant.price, Product.base_price, 0),
            ProductVariant.available_quantity,
        )
        .join(Product, Product.id == ProductVariant.product_id)
        .where(ProductVariant.product_id == product_id)
    ).all()
    if not rows:
        return {}
    return {"price": max(r[0] for r in rows), "quantity": max(r[1] for r in rows)}


def listing_action(
    session: Session,
    access: Access,
    listing_id: uuid.UUID,
    action: str,
    *,
    idempotency_key: str | None = None,
) -> Job | Approval:
    """Start ``action`` (publish, update or delist) on a listing: the job that does it, or the
    approval it waits for. Raises NotFound for an unknown listing, Conflict when the listing's
    status does not allow the action, ValueError for an unknown action."""
    if action not in LISTING_JOBS:
        raise ValueError(f"unknown listing action {action!r}")
    listing = session.scalar(select(Listing).where(Listing.id == listing_id).with_for_update())
    if listing is None:
        raise NotFound("No such listing.")
    if listing.status not in LISTING_FROM[action]:
        raise Conflict(f"A {listing.status.value} listing cannot be {action}ed.")
    if action == "publish" and get_product(session, listing.product_id).status == (
        ProductStatus.DELETING
    ):
        raise Conflict("This listing's product is being deleted.")
    job_payload = {"listing_id": str(listing.id), "product_id": str(listing.product_id)}
    if approvals.needs_approval(
        session,
        access,
        resource_type="listing",
        action=action,
        amounts=_price_and_quantity(session, listing.product_id),
    ):
        return approvals.request_approval(
            session,
            access,
            resource_type="listing",
            resource_id=listing.id,
            action=action,
            payload={
                "job_type": LISTING_JOBS[action],
                "store_id": str(listing.store_id),
                "job_payload": job_payload,
            },
            content=current_listing_content(session, listing, action),
        )
    from fusion.jobs import service as jobs

    before = snapshot(listing, LISTING_FIELDS)
    job = jobs.enqueue(
        session,
        org_id=access.org_id,
        job_type=LISTING_JOBS[action],
        payload=job_payload,
        store_id=listing.store_id,
        idempotency_key=idempotency_key,
        created_by=access.user_id,
    )
    if action == "publish":
        listing.status = ListingStatus.STAGED
    session.flush()
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action=f"listing.{action}",
        resource_type="listing",
        resource_id=listing.id,
        before=before,
        after={**snapshot(listing, LISTING_FIELDS), "job_id": str(job.id)},
    )
    return job
