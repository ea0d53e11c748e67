"""The catalog (products and variants) and the listing actions that reach the platforms.

Writes are audited in the caller's transaction. A listing action (publish, update, delist)
answers with either the job that will do it or, when the org's policy or the caller's role
asks for it, the approval that must come first.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fusion.approvals import service as approvals
from fusion.approvals.models import Approval
from fusion.audit.service import audited_create, audited_delete, audited_update, record, snapshot
from fusion.auth.access import Access, Principal
from fusion.catalog.models import Listing, ListingStatus, Product, ProductVariant
from fusion.errors import Conflict, NotFound
from fusion.jobs.models import Job
from fusion.plugins.base import Capability
from fusion.stores.models import Store

PRODUCT_FIELDS = ("title", "description", "vendor", "product_type", "tags", "status", "attributes")
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
# What an approved delete may remove, with the fields its audit entry keeps.
DELETABLE = {"product": PRODUCT_FIELDS, "product_variant": VARIANT_FIELDS}
DELETE_JOB = "delete_catalog_item"

# The capability job each listing action runs (DESIGN §7).
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
    """Change the given fields of a product. Raises NotFound for an unknown id."""
    product = get_product(session, product_id)
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


def delete_product(session: Session, access: Access, product_id: uuid.UUID) -> Approval | None:
    """Delete a product (and its variants and listings), or, when approval is needed, return
    the pending approval and change nothing."""
    product = get_product(session, product_id)
    return _delete_or_request(session, access, product, "product", {"title": product.title})


def _delete_or_request(
    session: Session,
    access: Access,
    obj: Product | ProductVariant,
    resource_type: str,
    summary: dict[str, Any],
) -> Approval | None:
    """Delete ``obj`` with its audit entry, or, where the org's policy (or the caller's role)
    asks for approval, return the pending approval and change nothing. Approving it enqueues
    ``delete_catalog_item`` (``fusion/catalog/jobs.py``), which deletes through
    :func:`delete_approved`."""
    if approvals.needs_approval(session, access, resource_type=resource_type, action="delete"):
        return approvals.request_approval(
            session,
            access,
            resource_type=resource_type,
            resource_id=obj.id,
            action="delete",
            payload={
                **summary,
                "job_type": DELETE_JOB,
                "job_payload": {"resource_type": resource_type, "resource_id": str(obj.id)},
            },
        )
    _delete(session, access.org_id, access.principal, obj, resource_type)
    return None


def delete_approved(
    session: Session, org_id: uuid.UUID, resource_type: str, resource_id: uuid.UUID
) -> bool:
    """Carry out an approved delete of a product or variant, audited as the system's act (the
    approval's own entries name who asked and who approved). False when it is already gone.
    Raises ValueError for a resource type that is not deleted through approvals."""
    if resource_type not in DELETABLE:
        raise ValueError(f"{resource_type!r} is not a catalog item")
    obj: Product | ProductVariant | None = (
        session.get(Product, resource_id, with_for_update=True)
        if resource_type == "product"
        else session.get(ProductVariant, resource_id, with_for_update=True)
    )
    if obj is None:
        return False
    _delete(session, org_id, None, obj, resource_type)
    return True


def _delete(
    session: Session,
    org_id: uuid.UUID,
    actor: Principal | None,
    obj: Product | ProductVariant,
    resource_type: str,
) -> None:
    audited_delete(
        session,
        org_id=org_id,
        actor=actor,
        obj=obj,
        action=f"{resource_type.removeprefix('product_')}.delete",
        resource_type=resource_type,
        fields=DELETABLE[resource_type],
    )


def get_variant(session: Session, variant_id: uuid.UUID) -> ProductVariant:
    variant = session.get(ProductVariant, variant_id)
    if variant is None:
        raise NotFound("No such variant.")
    return variant


def _refuse_stock(fields: dict[str, Any]) -> None:
    # Stock changes only through the ledger, which sits above the catalog.
    if "available_quantity" in fields:
        raise ValueError("stock changes go through fusion.inventory.ledger.move")


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
    unknown product, Conflict for a SKU the org already uses, ValueError when given
    ``available_quantity``."""
    _refuse_stock(fields)
    get_product(session, product_id)
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
    ``fusion.inventory.manual.update_variant``). Raises NotFound / Conflict (SKU taken), and
    ValueError when given ``available_quantity``."""
    _refuse_stock(changes)
    variant = get_variant(session, variant_id)
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


def delete_variant(session: Session, access: Access, variant_id: uuid.UUID) -> Approval | None:
    """Delete a variant, or return the pending approval an operator's delete needs."""
    variant = get_variant(session, variant_id)
    return _delete_or_request(session, access, variant, "product_variant", {"sku": variant.sku})


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
        select(ProductVariant.price, ProductVariant.available_quantity).where(
            ProductVariant.product_id == product_id
        )
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
