"""The catalog's jobs: the listing capabilities (list, publish, update, delist on a store's
platform) and ``delete_catalog_item``, the delete of a product or variant that waited for an
approval (enqueued when the approval is granted, ``fusion.approvals.service.decide``).

Every handler re-reads state at run time (a re-delivered or re-run job does the right thing),
never holds a database transaction across a platform call, and reaches the platform only
through :func:`fusion.stores.client.store_client`. A job an approval released first checks,
in the transaction that reads what it will push, that this is still what was approved
(``fusion.approvals.service.check_released``); if not, it does nothing, fails for good with
the reason, and a new approval asks again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from fusion.approvals import service as approvals
from fusion.approvals.models import Approval
from fusion.catalog import deletes
from fusion.catalog.content import listing_content, product_draft
from fusion.catalog.models import Listing, ListingStatus, Product, ProductStatus
from fusion.catalog.service import DELETE_JOB
from fusion.errors import Conflict, PermanentError, RetryableError
from fusion.jobs.context import JobContext
from fusion.jobs.registry import capability_job, job_type
from fusion.media.storage import media_store
from fusion.plugins.base import Capability, ProductDraft, RemoteProduct
from fusion.stores.client import store_client

# The listing capabilities change what is on sale: they start from the listing endpoints,
# where the org's approval policies apply, never from the generic jobs endpoint.
LISTING = (
    "publish, update or delist the listing instead (POST /orgs/{org}/listings/{id}/publish, "
    "/update or /delist), where approval policies apply"
)


def _listing(session: Session, ctx: JobContext, listing_id: uuid.UUID) -> Listing:
    listing = session.get(Listing, listing_id, with_for_update=True)
    if listing is None or listing.store_id != ctx.store_id:
        raise PermanentError(f"listing {listing_id} does not exist on this job's store")
    return listing


def _changed_since_approval(
    session: Session, ctx: JobContext, listing: Listing, action: str, draft: ProductDraft | None
) -> str | None:
    """Why the job must not act: the listing's content is no longer what the approval that
    released this job approved (a new approval now asks again). None when it may act."""
    content = listing_content(listing, action, draft)
    asked = approvals.check_released(session, job_id=ctx.job_id, content=content)
    return None if asked is None else approvals.asked_again_reason(asked)


def _remote_json(remote: RemoteProduct) -> dict[str, Any]:
    return {
        "external_id": remote.external_id,
        "title": remote.title,
        "url": remote.url,
        "quantities": dict(remote.quantities),
    }


def _pushed(listing: Listing, remote: RemoteProduct, draft: ProductDraft) -> None:
    """Keep what the platform answered and which SKUs the hub pushed (a deleted variant's row
    goes once no live listing carries its SKU)."""
    listing.platform_data = {
        **(listing.platform_data or {}),
        **dict(remote.raw),
        deletes.PUSHED_SKUS: [v.sku for v in draft.variants],
    }


def _fail_listing(ctx: JobContext, listing_id: uuid.UUID, error: str) -> None:
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        listing.status = ListingStatus.FAILED
        listing.last_error = error[:2000]
    ctx.log("listing failed", "error", listing_id=str(listing_id))


@capability_job(Capability.LIST_PRODUCTS)
def list_products(ctx: JobContext) -> dict[str, Any]:
    with store_client(ctx, Capability.LIST_PRODUCTS) as bound:
        products = bound.client.list_products()
    ctx.log(f"the platform holds {len(products)} products", "info", count=len(products))
    return {"count": len(products), "products": [_remote_json(p) for p in products[:100]]}


@capability_job(Capability.CREATE_PRODUCT, internal=LISTING)
def create_product(ctx: JobContext) -> dict[str, Any]:
    """Publish the listing: ``publishing`` while the platform is called, then ``published``
    with the platform's id, or ``failed`` with its error once no attempt is left."""
    listing_id = ctx.payload_uuid("listing_id")
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        if listing.status == ListingStatus.PUBLISHED and listing.external_id:
            return {"external_id": listing.external_id, "already_published": True}
        draft = product_draft(session, listing, media_store(ctx.settings))
        product = session.get(Product, listing.product_id)
        if product is not None and product.status == ProductStatus.DELETING:
            raise PermanentError("the product is being deleted: nothing to publish")
        changed = _changed_since_approval(session, ctx, listing, "publish", draft)
        if changed is None:
            listing.status = ListingStatus.PUBLISHING
            listing.last_error = None
        elif listing.status == ListingStatus.PUBLISHING:  # an earlier attempt began
            listing.status = ListingStatus.FAILED
            listing.last_error = changed
    if changed is not None:  # raised once the new approval has committed
        raise PermanentError(changed)
    ctx.log("publishing listing", "info", listing_id=str(listing_id), variants=len(draft.variants))
    try:
        with store_client(ctx, Capability.CREATE_PRODUCT) as bound:
            remote = bound.client.create_product(draft)
    except PermanentError as exc:
        _fail_listing(ctx, listing_id, str(exc))
        raise
    except RetryableError as exc:
        if ctx.last_attempt:
            _fail_listing(ctx, listing_id, str(exc))
        raise
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        listing.status = ListingStatus.PUBLISHED
        listing.external_id = remote.external_id
        listing.external_url = remote.url
        _pushed(listing, remote, draft)
        listing.published_at = listing.last_synced_at = datetime.now(UTC)
    ctx.log("published", "info", external_id=remote.external_id)
    return _remote_json(remote)


@capability_job(Capability.UPDATE_PRODUCT, internal=LISTING)
def update_product(ctx: JobContext) -> dict[str, Any]:
    """Push the listing's product (its variants not being deleted) to the platform; then
    delete the product's variants that no live listing carries any more."""
    listing_id = ctx.payload_uuid("listing_id")
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        if not listing.external_id:
            raise PermanentError("the listing has never been published: nothing to update")
        external_id = listing.external_id
        product_id = listing.product_id
        draft = product_draft(session, listing, media_store(ctx.settings))
        changed = _changed_since_approval(session, ctx, listing, "update", draft)
    if changed is not None:
        raise PermanentError(changed)
    with store_client(ctx, Capability.UPDATE_PRODUCT) as bound:
        remote = bound.client.update_product(external_id, draft)
    with ctx.session() as session:
        # The product first, then the listing, in the order every delete locks them.
        session.get(Product, product_id, with_for_update=True)
        listing = _listing(session, ctx, listing_id)
        _pushed(listing, remote, draft)
        listing.external_url = remote.url or listing.external_url
        listing.last_synced_at = datetime.now(UTC)
        session.flush()
        gone = deletes.finish_variant_deletes(session, ctx.org_id, product_id)
    if gone:
        ctx.log(f"{len(gone)} deleted variant(s) gone from every listing: rows deleted", "info")
    return {**_remote_json(remote), "variants_deleted": [str(v) for v in gone]}


def _gone_with_its_product(session: Session, ctx: JobContext) -> bool:
    """Whether the listing went with the product the payload names (another delist of it
    finished the product's delete): a repeated delist then has nothing left to do."""
    if session.get(Listing, ctx.payload_uuid("listing_id")) is not None:
        return False
    product_id = ctx.payload.get("product_id")
    return product_id is not None and session.get(Product, uuid.UUID(str(product_id))) is None


@capability_job(Capability.DELETE_PRODUCT, internal=LISTING)
def delete_product(ctx: JobContext) -> dict[str, Any]:
    """Take the listing down (``delisted``), or mark it ``failed`` with the platform's reason
    once no attempt is left; then, when its product is being deleted and this was its last
    live listing, delete the product."""
    listing_id = ctx.payload_uuid("listing_id")
    with ctx.session() as session:
        if _gone_with_its_product(session, ctx):
            return {"deleted": False, "product_deleted": False, "reason": "already gone"}
        listing = _listing(session, ctx, listing_id)
        product_id = listing.product_id
        external_id = listing.external_id
        on_platform = listing.status != ListingStatus.DELISTED and external_id is not None
        changed = _changed_since_approval(session, ctx, listing, "delist", None)
    if changed is not None:
        raise PermanentError(changed)
    if on_platform and external_id is not None:
        try:
            with store_client(ctx, Capability.DELETE_PRODUCT) as bound:
                bound.client.delete_product(external_id)
        except PermanentError as exc:
            _fail_listing(ctx, listing_id, f"could not be taken down: {exc}")
            raise
        except RetryableError as exc:
            if ctx.last_attempt:
                _fail_listing(ctx, listing_id, f"could not be taken down: {exc}")
            raise
    with ctx.session() as session:
        session.get(Product, product_id, with_for_update=True)
        listing = _listing(session, ctx, listing_id)
        if on_platform:
            listing.status = ListingStatus.DELISTED
            listing.last_error = None
            listing.last_synced_at = datetime.now(UTC)
        session.flush()
        product_deleted = deletes.finish_product_delete(session, ctx.org_id, product_id)
    if on_platform:
        ctx.log("delisted", "info", external_id=external_id)
    if product_deleted:
        ctx.log(f"product {product_id} deleted: none of its listings is live", "info")
    result: dict[str, Any] = {"deleted": on_platform, "product_deleted": product_deleted}
    if on_platform:
        result["external_id"] = external_id
    else:
        result["reason"] = "not on the platform"
    return result


@job_type(
    DELETE_JOB,
    needs_store=False,
    internal="delete the product or variant instead; an approval enqueues this job",
)
def delete_catalog_item(ctx: JobContext) -> dict[str, Any]:
    """Delete the product or variant the payload names, as a direct delete would: at once, or
    by enqueueing the jobs that take it off its live listings first. Safe to run twice: the
    row is locked and re-read, one already gone is left alone. Raises PermanentError for a
    payload that names no catalog item, or a delete that cannot go ahead (the last variant of
    a listed product, a product being published)."""
    resource_type = str(ctx.payload.get("resource_type"))
    try:
        resource_id = uuid.UUID(str(ctx.payload.get("resource_id")))
        with ctx.session() as session:
            deletion = deletes.delete_approved(
                session, ctx.org_id, resource_type, resource_id, job_id=ctx.job_id
            )
            if isinstance(deletion, Approval):
                changed = approvals.asked_again_reason(deletion)
            else:
                job_ids = [str(job.id) for job in deletion.jobs] if deletion else []
                refused = [str(listing.id) for listing in deletion.refused] if deletion else []
    except ValueError as exc:
        raise PermanentError(f"not a catalog item to delete: {exc}") from None
    except Conflict as exc:
        raise PermanentError(str(exc)) from None
    if isinstance(deletion, Approval):  # raised once the new approval has committed
        raise PermanentError(changed)
    label = resource_type.replace("_", " ")
    if deletion is None:
        ctx.log(f"{label} {resource_id} was already gone", "info")
    elif deletion.deleted:
        ctx.log(f"{label} {resource_id} deleted", "info")
    else:
        ctx.log(f"{label} {resource_id}: {len(job_ids)} listing job(s) first", "info")
    return {
        "resource_type": resource_type,
        "resource_id": str(resource_id),
        "deleted": bool(deletion and deletion.deleted),
        "jobs": job_ids,
        "refused": refused,
    }
