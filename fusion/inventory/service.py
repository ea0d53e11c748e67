"""The hub's stock as the stores see it: what each store should show, and the pushes that
carry a change of stock to every other store that lists the SKU."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion.catalog.models import Listing, ListingStatus, ProductVariant
from fusion.jobs.models import Job
from fusion.jobs.service import enqueue
from fusion.plugins.base import Capability, InventoryUpdate
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import get_plugin
from fusion.stores.models import Store

SYNC_INVENTORY_JOB = "sync_inventory"  # the recurring read-back and drift correction


def hub_stock(
    session: Session, store_id: uuid.UUID, skus: Sequence[str] | None
) -> list[InventoryUpdate]:
    """The hub's quantity of each SKU listed (published) on the store, with its platform id
    (of ``skus`` only, when given)."""
    query = (
        select(ProductVariant.sku, ProductVariant.available_quantity, Listing.external_id)
        .join(Listing, Listing.product_id == ProductVariant.product_id)
        .where(Listing.store_id == store_id, Listing.status == ListingStatus.PUBLISHED)
        .order_by(ProductVariant.sku)
    )
    if skus is not None:
        query = query.where(ProductVariant.sku.in_(list(skus)))
    return [InventoryUpdate(sku=s, quantity=q, external_id=e) for s, q, e in session.execute(query)]


def fan_out_stock(
    session: Session, *, org_id: uuid.UUID, source_store_id: uuid.UUID, skus: Sequence[str]
) -> list[Job]:
    """Enqueue one ``real_time_inventory`` job per OTHER active store of the org that has a
    published listing of a product owning one of ``skus`` and whose plugin can push stock in
    real time; each job carries all of that store's affected SKUs (coalesced). Stores whose
    platform cannot get their stock on the recurring sync. Returns the jobs enqueued (none
    for no SKUs). In the caller's transaction: the jobs exist only if it commits."""
    if not skus:
        return []
    rows = session.execute(
        select(Listing.store_id, Store.platform, ProductVariant.sku)
        .join(Store, Store.id == Listing.store_id)
        .join(ProductVariant, ProductVariant.product_id == Listing.product_id)
        .where(
            ProductVariant.sku.in_(sorted(set(skus))),
            Listing.status == ListingStatus.PUBLISHED,
            Listing.store_id != source_store_id,
            Store.status == "active",
        )
        .order_by(Listing.store_id, ProductVariant.sku)
    ).all()
    by_store: dict[uuid.UUID, list[str]] = {}
    platforms: dict[uuid.UUID, str] = {}
    for store_id, platform, sku in rows:
        by_store.setdefault(store_id, []).append(sku)
        platforms[store_id] = platform
    jobs = []
    for store_id, store_skus in by_store.items():
        level = get_plugin(platforms[store_id]).level(Capability.REAL_TIME_INVENTORY)
        if level == ContractLevel.UNSUPPORTED:
            continue
        jobs.append(
            enqueue(
                session,
                org_id=org_id,
                job_type=Capability.REAL_TIME_INVENTORY,
                store_id=store_id,
                payload={"skus": sorted(set(store_skus))},
            )
        )
    return jobs
