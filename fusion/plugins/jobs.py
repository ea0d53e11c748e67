"""The capability job types: one per capability, plus the recurring inventory sync and the
orders reconciliation pull. Imported by workers at start (``fusion.jobs.registry``).

Every handler re-reads state at run time (a re-delivered or re-run job does the right thing),
never holds a database transaction across a platform call, and reaches the platform only
through :func:`fusion.plugins.calls.store_client`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import fusion.db.models  # noqa: F401  (every table, so foreign keys resolve in a worker)
from fusion.catalog.models import Listing, ListingStatus, Product, ProductVariant
from fusion.errors import NotFound, PermanentError, RetryableError
from fusion.jobs.registry import JobType, register
from fusion.orders.service import fan_out_stock, ingest_order
from fusion.plugins.base import (
    Capability,
    InventoryUpdate,
    ProductDraft,
    RemoteProduct,
    VariantDraft,
)
from fusion.plugins.calls import Bound, require, store_client
from fusion.plugins.models import ContractLevel
from fusion.stores.models import Store

if TYPE_CHECKING:
    from fusion.jobs.context import JobContext

# The listing capabilities change what is on sale: they start from the listing endpoints,
# where the org's approval policies apply, never from the generic jobs endpoint.
LISTING = (
    "publish, update or delist the listing instead (POST /orgs/{org}/listings/{id}/publish, "
    "/update or /delist), where approval policies apply"
)
REAL_TIME_PRIORITY = 10  # stock pushes pass catalog work on the same queue
RECONCILE_OVERLAP = timedelta(minutes=5)  # orders updated around the last pull are re-read
RECONCILE_FIRST_WINDOW = timedelta(days=7)


# -- reading the hub's side ------------------------------------------------------------------
def _uuid(payload: Mapping[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload[key]))
    except (KeyError, ValueError):
        raise PermanentError(f"the payload needs {key} (a UUID)") from None


def _listing(session: Session, ctx: JobContext, listing_id: uuid.UUID) -> Listing:
    listing = session.get(Listing, listing_id, with_for_update=True)
    if listing is None or listing.store_id != ctx.store_id:
        raise PermanentError(f"listing {listing_id} does not exist on this job's store")
    return listing


def _draft(session: Session, listing: Listing) -> ProductDraft:
    product = session.get(Product, listing.product_id)
    if product is None:
        raise PermanentError(f"product {listing.product_id} no longer exists")
    variants = session.scalars(
        select(ProductVariant)
        .where(ProductVariant.product_id == product.id)
        .order_by(ProductVariant.sku)
    ).all()
    if not variants:
        raise PermanentError(f"product {product.id} has no variants to publish")
    return ProductDraft(
        title=product.title,
        description=product.description,
        currency=variants[0].currency,
        # The listing id is stable across retries: the platform sees the same key and a
        # retried create never makes a second product.
        idempotency_key=str(listing.id),
        variants=[
            VariantDraft(sku=v.sku, price=v.price, quantity=v.available_quantity, title=v.title)
            for v in variants
        ],
        attributes={
            **(product.attributes or {}),
            "vendor": product.vendor,
            "product_type": product.product_type,
            "tags": list(product.tags or []),
        },
    )


def _hub_stock(
    session: Session, store_id: uuid.UUID, skus: Sequence[str] | None
) -> list[InventoryUpdate]:
    """The hub's quantity of each SKU listed (published) on the store, with its platform id."""
    query = (
        select(ProductVariant.sku, ProductVariant.available_quantity, Listing.external_id)
        .join(Listing, Listing.product_id == ProductVariant.product_id)
        .where(Listing.store_id == store_id, Listing.status == ListingStatus.PUBLISHED)
        .order_by(ProductVariant.sku)
    )
    if skus is not None:
        query = query.where(ProductVariant.sku.in_(list(skus)))
    return [InventoryUpdate(sku=s, quantity=q, external_id=e) for s, q, e in session.execute(query)]


def _remote_json(remote: RemoteProduct) -> dict[str, Any]:
    return {
        "external_id": remote.external_id,
        "title": remote.title,
        "url": remote.url,
        "quantities": dict(remote.quantities),
    }


def _push(ctx: JobContext, bound: Bound, updates: Sequence[InventoryUpdate]) -> str:
    """Push ``updates`` the platform's best way; returns which way."""
    if not updates:
        return "none"
    if bound.level(Capability.BULK_OPERATIONS) != ContractLevel.UNSUPPORTED and len(updates) > 1:
        if bound.level(Capability.BULK_OPERATIONS) == ContractLevel.WORKAROUND:
            ctx.log(f"{bound.plugin.slug}: bulk inventory is a workaround", "info")
        bound.client.bulk_set_inventory(updates)
        return "bulk"
    bound.client.set_inventory(updates)
    return "per_item"


# -- handlers --------------------------------------------------------------------------------
def list_products(ctx: JobContext) -> dict[str, Any]:
    with store_client(ctx, Capability.LIST_PRODUCTS) as bound:
        products = bound.client.list_products()
    ctx.log(f"the platform holds {len(products)} products", "info", count=len(products))
    return {"count": len(products), "products": [_remote_json(p) for p in products[:100]]}


def create_product(ctx: JobContext) -> dict[str, Any]:
    listing_id = _uuid(ctx.payload, "listing_id")
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        if listing.status == ListingStatus.PUBLISHED and listing.external_id:
            return {"external_id": listing.external_id, "already_published": True}
        draft = _draft(session, listing)
        listing.status = ListingStatus.PUBLISHING
        listing.last_error = None
    ctx.log("publishing listing", "info", listing_id=str(listing_id), variants=len(draft.variants))
    try:
        with store_client(ctx, Capability.CREATE_PRODUCT) as bound:
            remote = bound.client.create_product(draft)
    except PermanentError as exc:
        _fail_listing(ctx, listing_id, str(exc))
        raise
    except RetryableError as exc:
        if ctx.attempt >= _max_attempts(ctx):
            _fail_listing(ctx, listing_id, str(exc))
        raise
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        listing.status = ListingStatus.PUBLISHED
        listing.external_id = remote.external_id
        listing.external_url = remote.url
        listing.platform_data = {**(listing.platform_data or {}), **dict(remote.raw)}
        listing.published_at = listing.last_synced_at = datetime.now(UTC)
    ctx.log("published", "info", external_id=remote.external_id)
    return _remote_json(remote)


def _max_attempts(ctx: JobContext) -> int:
    return int(getattr(ctx, "max_attempts", 0) or ctx.settings.max_attempts)


def _fail_listing(ctx: JobContext, listing_id: uuid.UUID, error: str) -> None:
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        listing.status = ListingStatus.FAILED
        listing.last_error = error[:2000]
    ctx.log("listing failed", "error", listing_id=str(listing_id))


def update_product(ctx: JobContext) -> dict[str, Any]:
    listing_id = _uuid(ctx.payload, "listing_id")
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        if not listing.external_id:
            raise PermanentError("the listing has never been published: nothing to update")
        external_id = listing.external_id
        draft = _draft(session, listing)
    with store_client(ctx, Capability.UPDATE_PRODUCT) as bound:
        remote = bound.client.update_product(external_id, draft)
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        listing.platform_data = {**(listing.platform_data or {}), **dict(remote.raw)}
        listing.external_url = remote.url or listing.external_url
        listing.last_synced_at = datetime.now(UTC)
    return _remote_json(remote)


def delete_product(ctx: JobContext) -> dict[str, Any]:
    listing_id = _uuid(ctx.payload, "listing_id")
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        if listing.status == ListingStatus.DELISTED or not listing.external_id:
            return {"deleted": False, "reason": "not on the platform"}
        external_id = listing.external_id
    with store_client(ctx, Capability.DELETE_PRODUCT) as bound:
        bound.client.delete_product(external_id)
    with ctx.session() as session:
        listing = _listing(session, ctx, listing_id)
        listing.status = ListingStatus.DELISTED
        listing.last_synced_at = datetime.now(UTC)
    ctx.log("delisted", "info", external_id=external_id)
    return {"deleted": True, "external_id": external_id}


def _updates_from_payload(ctx: JobContext) -> list[InventoryUpdate] | None:
    raw = ctx.payload.get("updates")
    if raw is None:
        return None
    return [
        InventoryUpdate(sku=u["sku"], quantity=int(u["quantity"]), external_id=u.get("external_id"))
        for u in raw
    ]


def bulk_operations(ctx: JobContext) -> dict[str, Any]:
    """Bulk inventory: the given updates, or the hub's current stock of ``skus`` (or of every
    published listing of the store when neither is given)."""
    updates = _updates_from_payload(ctx)
    if updates is None:
        with ctx.session() as session:
            updates = _hub_stock(session, _store_id(ctx), ctx.payload.get("skus"))
    with store_client(ctx, Capability.BULK_OPERATIONS) as bound:
        bound.client.bulk_set_inventory(updates)
    ctx.log(f"pushed {len(updates)} quantities in bulk", "info", count=len(updates))
    return {"pushed": len(updates)}


def real_time_inventory(ctx: JobContext) -> dict[str, Any]:
    """Push the hub's quantity of ``skus`` now, read at run time so coalesced pushes send the
    latest figure (or exactly ``updates`` when the payload gives them)."""
    updates = _updates_from_payload(ctx)
    if updates is None:
        with ctx.session() as session:
            updates = _hub_stock(session, _store_id(ctx), ctx.payload.get("skus"))
    with store_client(ctx, Capability.REAL_TIME_INVENTORY) as bound:
        bound.client.set_inventory(updates)
    ctx.log(f"pushed {len(updates)} quantities", "info", skus=[u.sku for u in updates][:50])
    return {"pushed": len(updates)}


def sync_inventory(ctx: JobContext) -> dict[str, Any]:
    """Read back what the platform holds, push the hub's figure wherever it differs (bulk
    where the platform can), and log every drift corrected."""
    store_id = _store_id(ctx)
    with ctx.session() as session:
        hub = _hub_stock(session, store_id, None)
    with store_client(ctx) as bound:
        require(ctx, bound.plugin, Capability.LIST_PRODUCTS)
        remote: dict[str, int] = {}
        for product in bound.client.list_products():
            remote.update(product.quantities)
        ctx.checkpoint()
        drift: list[InventoryUpdate] = []
        for update in hub:
            held = remote.get(update.sku)
            if held is None:
                ctx.log(f"{update.sku}: not found on the platform", "warning", sku=update.sku)
            elif held != update.quantity:
                ctx.log(
                    f"{update.sku}: platform held {held}, hub holds {update.quantity}; corrected",
                    "warning",
                    sku=update.sku,
                    platform=held,
                    hub=update.quantity,
                )
                drift.append(update)
        how = _push(ctx, bound, drift)
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is not None:
            store.last_synced_at = datetime.now(UTC)
    return {"checked": len(hub), "corrected": len(drift), "push": how}


def reconcile_orders(ctx: JobContext) -> dict[str, Any]:
    """Pull orders changed since the last pull (with an overlap): each is stored once per
    (store, external id) and takes its stock once, whether the pull or the webhook sees it
    first (``fusion.orders.service.ingest_order``); the changed SKUs then fan out to the
    org's other real-time stores."""
    store_id = _store_id(ctx)
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is None:
            raise NotFound(f"store {store_id} no longer exists")
        last = (store.settings or {}).get("orders_reconciled_at")
    started = datetime.now(UTC)
    since = (
        datetime.fromisoformat(last) - RECONCILE_OVERLAP
        if last
        else started - RECONCILE_FIRST_WINDOW
    )
    if "since" in ctx.payload:
        since = datetime.fromisoformat(str(ctx.payload["since"]))
    with store_client(ctx, Capability.ORDER_WEBHOOKS) as bound:
        orders = bound.client.fetch_orders(since)
    new = 0
    changed: set[str] = set()
    cancelled = 0
    with ctx.session() as session:
        for order in orders:
            ingested = ingest_order(session, org_id=ctx.org_id, store_id=store_id, order=order)
            new += int(ingested.created)
            changed.update(ingested.changed_skus)
            cancelled += int(bool(ingested.restored))
        fanned = fan_out_stock(
            session, org_id=ctx.org_id, source_store_id=store_id, skus=sorted(changed)
        )
        store = session.get(Store, store_id)
        if store is not None:
            store.settings = {**(store.settings or {}), "orders_reconciled_at": started.isoformat()}
    ctx.log(
        f"reconciled {len(orders)} orders, {new} new, {cancelled} cancelled (stock given "
        f"back); stock changed for {len(changed)} SKUs, {len(fanned)} stores to update",
        "info",
        seen=len(orders),
        new=new,
        cancelled=cancelled,
    )
    return {
        "seen": len(orders),
        "new": new,
        "cancelled": cancelled,
        "fan_out_jobs": len(fanned),
    }


def _store_id(ctx: JobContext) -> uuid.UUID:
    if ctx.store_id is None:
        raise PermanentError("this job names no store")
    return ctx.store_id


# -- registration ----------------------------------------------------------------------------
JOB_TYPES = (
    JobType("list_products", list_products, capability="list_products"),
    JobType("create_product", create_product, capability="create_product", internal=LISTING),
    JobType("update_product", update_product, capability="update_product", internal=LISTING),
    JobType("delete_product", delete_product, capability="delete_product", internal=LISTING),
    JobType("bulk_operations", bulk_operations, capability="bulk_operations", priority=-1),
    JobType(
        "real_time_inventory",
        real_time_inventory,
        capability="real_time_inventory",
        priority=REAL_TIME_PRIORITY,
    ),
    JobType("sync_inventory", sync_inventory),
    JobType("reconcile_orders", reconcile_orders, capability="order_webhooks"),
)
PAYLOAD_SCHEMAS = {t.name: f"plugin_jobs.{t.name}" for t in JOB_TYPES}

for _job_type in JOB_TYPES:
    register(replace(_job_type, payload_schema=PAYLOAD_SCHEMAS[_job_type.name]))
