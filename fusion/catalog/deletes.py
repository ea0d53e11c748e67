"""Deletes that reach the platforms: a product, a variant or a store leaves no listing behind
that the hub stops managing without saying so.

- A product with live listings is first taken down: it is marked ``deleting``, one delist job
  per live listing is enqueued (audited), and the delist job that takes the last one down
  deletes the product (:func:`finish_product_delete`). A listing the platform refuses to take
  down stays, ``failed`` with the reason, and the product waits for it.
- A variant of a listed product is marked (``deleting_at``), every draft leaves it out from
  then on, one update job per published listing pushes the product without it, and the update
  that leaves no live listing carrying its SKU deletes the row (:func:`finish_variant_deletes`).
- A store that goes never takes the merchant's products down with it: its live listings are
  left on the platform, unmanaged, and the answer and the audit entry list them.

Without a live listing, a product or variant is deleted at once, as before. An operator's
delete (or any, where the org's policy asks) first waits for an approval; granting it enqueues
``delete_catalog_item``, which continues through :func:`delete_approved`. The caller owns the
transaction: nothing here commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion.approvals import service as approvals
from fusion.approvals.models import Approval
from fusion.audit.service import audited_delete, record, snapshot
from fusion.auth.access import Access, Principal
from fusion.catalog.models import (
    LIVE,
    Listing,
    ListingStatus,
    Product,
    ProductStatus,
    ProductVariant,
    on_sale,
)
from fusion.catalog.service import (
    DELETABLE,
    DELETE_JOB,
    LISTING_FIELDS,
    PRODUCT_FIELDS,
    VARIANT_FIELDS,
    get_variant,
)
from fusion.errors import Conflict, NotFound
from fusion.jobs import service as jobs
from fusion.jobs.models import Job
from fusion.plugins.base import Capability
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import get_plugin
from fusion.stores.models import Store

# Where a listing's platform_data keeps the SKUs the hub last pushed to it (set by the
# publish and update jobs), so a deleted variant's row goes only once no live listing
# carries it.
PUSHED_SKUS = "fusion_pushed_skus"
DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Deletion:
    """What a delete did: ``deleted`` at once, or the ``jobs`` that take the item off its
    listings first, with the listings whose platform ``refused`` to take them down."""

    deleted: bool
    jobs: list[Job] = field(default_factory=list)
    refused: list[Listing] = field(default_factory=list)


@dataclass(frozen=True)
class LeftLive:
    """A listing a store's removal left on sale on its platform, no longer managed."""

    listing_id: uuid.UUID
    product_id: uuid.UUID
    external_id: str
    url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "listing_id": str(self.listing_id),
            "product_id": str(self.product_id),
            "external_id": self.external_id,
            "url": self.url,
        }


# -- which listings are live ----------------------------------------------------------------
def _listings(
    session: Session, product_id: uuid.UUID, statuses: tuple[ListingStatus, ...]
) -> list[Listing]:
    """The product's listings on managed (not disconnected) stores that are on the platform
    in one of ``statuses``, locked, oldest first."""
    return list(
        session.scalars(
            select(Listing)
            .join(Store, Store.id == Listing.store_id)
            .where(
                Listing.product_id == product_id,
                Listing.external_id.is_not(None),
                Listing.status.in_(statuses),
                Store.status != DISCONNECTED,
            )
            .order_by(Listing.created_at, Listing.id)
            .with_for_update(of=Listing)
        )
    )


def _refuse_while_publishing(session: Session, product_id: uuid.UUID) -> None:
    # A publish in flight may put the product on sale after the delete looked: wait for it.
    publishing = session.scalar(
        select(Listing.id).where(
            Listing.product_id == product_id, Listing.status == ListingStatus.PUBLISHING
        )
    )
    if publishing is not None:
        raise Conflict("A listing of this product is being published; delete it once that ends.")


def _cannot_delist(session: Session, listing: Listing) -> str | None:
    """Why the listing's platform cannot take it down (no job could), or None."""
    store = session.get(Store, listing.store_id)
    platform = store.platform if store is not None else "?"
    level = get_plugin(platform).level(Capability.DELETE_PRODUCT) if store else None
    if level is not None and level != ContractLevel.UNSUPPORTED:
        return None
    return (
        f"could not be taken down: the platform ({platform}) does not support deleting a "
        "product; remove it there, then disconnect or delete the store to stop waiting for it"
    )


# -- products -------------------------------------------------------------------------------
def delete_product(session: Session, access: Access, product_id: uuid.UUID) -> Approval | Deletion:
    """Delete a product: at once when none of its listings is live, else take its live
    listings down first (see the module). When approval is needed, return the pending approval
    and change nothing. Deleting a product already ``deleting`` tries its take-downs again.
    Raises NotFound for an unknown product, Conflict while one of its listings is publishing."""
    product = session.get(Product, product_id, with_for_update=True)
    if product is None:
        raise NotFound("No such product.")
    if approvals.needs_approval(session, access, resource_type="product", action="delete"):
        return _request(session, access, product, "product", {"title": product.title})
    return _take_down(session, access.org_id, access.principal, product)


def _take_down(
    session: Session, org_id: uuid.UUID, actor: Principal | None, product: Product
) -> Deletion:
    _refuse_while_publishing(session, product.id)
    live = _listings(session, product.id, LIVE)
    if not live:
        _delete(session, org_id, actor, product, "product")
        return Deletion(deleted=True)
    if product.status != ProductStatus.DELETING:
        before = snapshot(product, PRODUCT_FIELDS)
        product.status = ProductStatus.DELETING
        session.flush()
        record(
            session,
            org_id=org_id,
            actor=actor,
            action="product.deleting",
            resource_type="product",
            resource_id=product.id,
            before=before,
            after={
                **snapshot(product, PRODUCT_FIELDS),
                "taking_down": [str(listing.id) for listing in live],
            },
        )
    deletion = Deletion(deleted=False)
    for listing in live:
        before = snapshot(listing, LISTING_FIELDS)
        reason = _cannot_delist(session, listing)
        job: Job | None = None
        if reason is None:
            job = jobs.enqueue(
                session,
                org_id=org_id,
                job_type=Capability.DELETE_PRODUCT,
                payload={"listing_id": str(listing.id), "product_id": str(product.id)},
                store_id=listing.store_id,
                created_by=actor.user_id if actor else None,
            )
            deletion.jobs.append(job)
        else:
            listing.status = ListingStatus.FAILED
            listing.last_error = reason
            deletion.refused.append(listing)
        session.flush()
        record(
            session,
            org_id=org_id,
            actor=actor,
            action="listing.delist",
            resource_type="listing",
            resource_id=listing.id,
            before=before,
            after={
                **snapshot(listing, LISTING_FIELDS),
                "job_id": str(job.id) if job else None,
                "reason": "the product is being deleted",
                **({"error": reason} if reason else {}),
            },
        )
    return deletion


def finish_product_delete(session: Session, org_id: uuid.UUID, product_id: uuid.UUID) -> bool:
    """Delete a ``deleting`` product (audited as the system's act) once none of its listings is
    live any more; True when this call deleted it. A product gone, no longer ``deleting`` or
    still live somewhere is left alone, so it is safe to call from every delist and twice."""
    product = session.get(Product, product_id, with_for_update=True)
    if product is None or product.status != ProductStatus.DELETING:
        return False
    session.refresh(product)  # the lock may have waited for another delist's commit
    if product.status != ProductStatus.DELETING or _listings(session, product_id, LIVE):
        return False
    _delete(session, org_id, None, product, "product")
    return True


# -- variants -------------------------------------------------------------------------------
def delete_variant(session: Session, access: Access, variant_id: uuid.UUID) -> Approval | Deletion:
    """Delete a variant: at once when its product has no live listing, else push the
    product without it to each live listing first (see the module). When approval is
    needed, return the pending approval and change nothing. Raises NotFound for an unknown
    variant, Conflict for the last variant of a listed product (delete the product) or one
    whose product is being deleted or published."""
    variant = get_variant(session, variant_id)
    if approvals.needs_approval(session, access, resource_type="product_variant", action="delete"):
        return _request(session, access, variant, "product_variant", {"sku": variant.sku})
    return _take_off(session, access.org_id, access.principal, variant)


def _take_off(
    session: Session, org_id: uuid.UUID, actor: Principal | None, variant: ProductVariant
) -> Deletion:
    product = session.get(Product, variant.product_id, with_for_update=True)
    if product is None:
        raise NotFound("No such product.")
    session.refresh(variant, with_for_update=True)
    if product.status == ProductStatus.DELETING:
        raise Conflict("This variant's product is being deleted.")
    _refuse_while_publishing(session, product.id)
    live = _listings(session, product.id, LIVE)
    if not live:
        _delete(session, org_id, actor, variant, "product_variant")
        return Deletion(deleted=True)
    others = session.scalar(
        select(ProductVariant.id).where(
            ProductVariant.product_id == product.id,
            ProductVariant.id != variant.id,
            ProductVariant.deleting_at.is_(None),
        )
    )
    if others is None:
        raise Conflict("This is the last variant of a listed product: delete the product.")
    if variant.deleting_at is None:
        before = snapshot(variant, VARIANT_FIELDS)
        variant.deleting_at = datetime.now(UTC)
        session.flush()
        record(
            session,
            org_id=org_id,
            actor=actor,
            action="variant.deleting",
            resource_type="product_variant",
            resource_id=variant.id,
            before=before,
            after={
                **snapshot(variant, VARIANT_FIELDS),
                "updating": [str(listing.id) for listing in live],
            },
        )
    deletion = Deletion(deleted=False)
    for listing in live:
        job = jobs.enqueue(
            session,
            org_id=org_id,
            job_type=Capability.UPDATE_PRODUCT,
            payload={"listing_id": str(listing.id), "product_id": str(product.id)},
            store_id=listing.store_id,
            created_by=actor.user_id if actor else None,
        )
        deletion.jobs.append(job)
        record(
            session,
            org_id=org_id,
            actor=actor,
            action="listing.update",
            resource_type="listing",
            resource_id=listing.id,
            before=None,
            after={
                **snapshot(listing, LISTING_FIELDS),
                "job_id": str(job.id),
                "reason": f"variant {variant.sku} is being deleted",
            },
        )
    return deletion


def finish_variant_deletes(
    session: Session, org_id: uuid.UUID, product_id: uuid.UUID
) -> list[uuid.UUID]:
    """Delete the product's ``deleting`` variants that no live listing carries any more (by
    the SKUs last pushed to it; a listing that never recorded them counts as carrying all),
    audited as the system's act; returns the ids deleted. Safe to call twice."""
    if session.get(Product, product_id, with_for_update=True) is None:
        return []
    pending = session.scalars(
        select(ProductVariant)
        .where(ProductVariant.product_id == product_id, ProductVariant.deleting_at.is_not(None))
        .with_for_update()
    ).all()
    if not pending:
        return []
    carried: set[str] = set()
    carries_all = False
    for listing in _listings(session, product_id, LIVE):
        skus = (listing.platform_data or {}).get(PUSHED_SKUS)
        if isinstance(skus, list):
            carried.update(str(s) for s in skus)
        else:
            carries_all = True
    deleted = []
    for variant in pending:
        if carries_all or variant.sku in carried:
            continue
        deleted.append(variant.id)
        _delete(session, org_id, None, variant, "product_variant")
    return deleted


# -- approvals ------------------------------------------------------------------------------
# What a delete's approval binds: the item as a person saw it (stock and the marks the delete
# itself sets left out) and the live listings it would take it off.
BOUND_FIELDS = {
    "product": ("title", "description", "vendor", "product_type", "tags", "attributes"),
    "product_variant": ("product_id", "sku", "title", "price", "currency", "barcode", "attributes"),
}


def delete_content(
    session: Session, resource_type: str, obj: Product | ProductVariant
) -> dict[str, Any]:
    """The content of deleting ``obj``: its fields a person recognises it by, and the live
    listings (locked) the delete would take it off (the product's, for a variant)."""
    product_id = obj.id if isinstance(obj, Product) else obj.product_id
    return {
        "action": "delete",
        "resource_type": resource_type,
        "resource_id": str(obj.id),
        "item": snapshot(obj, BOUND_FIELDS[resource_type]),
        "live_listings": [
            {
                "listing_id": str(listing.id),
                "store_id": str(listing.store_id),
                "external_id": listing.external_id,
            }
            for listing in _listings(session, product_id, LIVE)
        ],
    }


def _request(
    session: Session,
    access: Access,
    obj: Product | ProductVariant,
    resource_type: str,
    summary: dict[str, Any],
) -> Approval:
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
        content=delete_content(session, resource_type, obj),
    )


def delete_approved(
    session: Session,
    org_id: uuid.UUID,
    resource_type: str,
    resource_id: uuid.UUID,
    *,
    job_id: uuid.UUID,
) -> Deletion | Approval | None:
    """Carry out the delete of a product or variant that approval released job ``job_id``
    for, as the system's act (the approval's own entries name who asked and who approved),
    the same way a direct delete goes; None when it is already gone. When the item or its
    live listings are no longer what was approved, nothing is deleted and the new pending
    approval that asks again is returned (``fusion.approvals.service.check_released``).
    Raises ValueError for a resource type that is not deleted through approvals, Conflict as
    :func:`delete_variant` does."""
    if resource_type not in DELETABLE:
        raise ValueError(f"{resource_type!r} is not a catalog item")
    obj: Product | ProductVariant | None
    if resource_type == "product":
        obj = session.get(Product, resource_id, with_for_update=True)
    else:
        variant = session.get(ProductVariant, resource_id)
        if variant is not None:
            # The product first, then the variant, in the order every delete locks them.
            session.get(Product, variant.product_id, with_for_update=True)
            session.refresh(variant, with_for_update=True)
        obj = variant
    if obj is None:
        return None
    content = delete_content(session, resource_type, obj)
    asked = approvals.check_released(session, job_id=job_id, content=content)
    if asked is not None:
        return asked
    if isinstance(obj, Product):
        return _take_down(session, org_id, None, obj)
    return _take_off(session, org_id, None, obj)


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


# -- stores ---------------------------------------------------------------------------------
def left_live(session: Session, store_id: uuid.UUID) -> list[LeftLive]:
    """The store's listings that are (or may still be) on sale on its platform."""
    rows = session.scalars(
        select(Listing)
        .where(Listing.store_id == store_id, on_sale())
        .order_by(Listing.created_at, Listing.id)
    ).all()
    return [LeftLive(r.id, r.product_id, str(r.external_id), r.external_url) for r in rows]


def delete_store(
    session: Session, access: Access, store_id: uuid.UUID, *, fields: tuple[str, ...]
) -> list[LeftLive]:
    """Forget a store with its credentials, listings and jobs, never touching the merchant's
    products on the platform: returns the listings left live there and unmanaged, which the
    ``store.delete`` audit entry (with the store's ``fields``) names too. A product whose
    deletion waited only for this store's listings is deleted now. Raises NotFound for an
    unknown store."""
    store = session.get(Store, store_id, with_for_update=True)
    if store is None:
        raise NotFound(f"no store {store_id}")
    left = left_live(session, store_id)
    waiting = _waiting_on(session, store_id)
    before = snapshot(store, fields)
    session.delete(store)
    session.flush()
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="store.delete",
        resource_type="store",
        resource_id=store_id,
        before=before,
        after={"left_live_and_unmanaged": [item.as_dict() for item in left]},
    )
    session.expire_all()  # the database cascaded the store's listings away
    for product_id in waiting:
        finish_product_delete(session, access.org_id, product_id)
    return left


def _waiting_on(session: Session, store_id: uuid.UUID) -> list[uuid.UUID]:
    """The ``deleting`` products with a listing on the store."""
    return sorted(
        set(
            session.scalars(
                select(Product.id)
                .join(Listing, Listing.product_id == Product.id)
                .where(Listing.store_id == store_id, Product.status == ProductStatus.DELETING)
            )
        )
    )


def disconnected(session: Session, access: Access, store: Store) -> list[LeftLive]:
    """Record that ``store``, just disconnected, left its live listings on the platform
    unmanaged (``store.disconnect``), and return them. The listings stay as they are: nothing
    is taken down, and a product delete no longer waits for them (one that waited only for
    them is done now)."""
    session.flush()
    left = left_live(session, store.id)
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="store.disconnect",
        resource_type="store",
        resource_id=store.id,
        after={"left_live_and_unmanaged": [item.as_dict() for item in left]},
    )
    for product_id in _waiting_on(session, store.id):
        finish_product_delete(session, access.org_id, product_id)
    return left
