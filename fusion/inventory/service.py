"""The hub's stock as the stores see it: what each store should show, and the pushes that
carry a change of stock to every store that lists the SKU, within seconds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fusion.catalog.models import Listing, ListingStatus, ProductVariant, on_sale
from fusion.jobs.models import Job
from fusion.jobs.service import enqueue_or_join
from fusion.plugins.base import Capability, InventoryUpdate
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import get_plugin
from fusion.stores.models import Store, StoreStatus
from fusion.stores.stock_rules import channel_shown

SYNC_INVENTORY_JOB = "sync_inventory"  # the recurring read-back and drift correction
# The push of changed SKUs to a store whose platform has no real-time inventory (Etsy): the
# recurring sync's push, limited to those SKUs, a moment after the change.
PUSH_INVENTORY_JOB = "push_inventory"
PUSH_DEBOUNCE_S = 1.0
# A push finding a listing of its SKUs being published pushes them again this much later
# (the publish may have sent a figure older than the push's), for as long as the publish
# lasts but no longer than the horizon.
PUBLISH_FOLLOW_UP_S = 2.0
PUBLISH_HORIZON_S = 900


def hub_stock(
    session: Session, store_id: uuid.UUID, skus: Sequence[str] | None
) -> list[InventoryUpdate]:
    """The quantity the store is to show of each SKU on sale on it (published, or live after
    a failed update or take-down), with its platform id (of ``skus`` only, when given): the
    hub's figure after the store's stock rules, overridden key by key by the listing's
    (``fusion.stores.stock_rules``)."""
    query = (
        select(
            ProductVariant.sku,
            ProductVariant.available_quantity,
            Listing.external_id,
            Store.stock_rules,
            Listing.stock_rules,
        )
        .join(Listing, Listing.product_id == ProductVariant.product_id)
        .join(Store, Store.id == Listing.store_id)
        .where(Listing.store_id == store_id, on_sale())
        .order_by(ProductVariant.sku)
    )
    if skus is not None:
        query = query.where(ProductVariant.sku.in_(list(skus)))
    return [
        InventoryUpdate(sku=s, quantity=channel_shown(q, store_rules, rules), external_id=e)
        for s, q, e, store_rules, rules in session.execute(query)
    ]


def publishing(session: Session, store_id: uuid.UUID, skus: Sequence[str] | None) -> list[str]:
    """The SKUs (of ``skus``, or of all when None) of the store's listings being published,
    for at most ``PUBLISH_HORIZON_S`` (a publish whose job died is not waited for forever).
    Such a publish read its figures before the change a push carries."""
    query = (
        select(ProductVariant.sku)
        .join(Listing, Listing.product_id == ProductVariant.product_id)
        .where(
            Listing.store_id == store_id,
            Listing.status == ListingStatus.PUBLISHING,
            Listing.updated_at > func.now() - timedelta(seconds=PUBLISH_HORIZON_S),
        )
        .distinct()
        .order_by(ProductVariant.sku)
    )
    if skus is not None:
        query = query.where(ProductVariant.sku.in_(list(skus)))
    return list(session.scalars(query))


def fan_out_stock(
    session: Session,
    *,
    org_id: uuid.UUID,
    skus: Sequence[str],
) -> list[Job]:
    """Carry a change of ``skus``' stock to every active store of the org that has a
    listing of one of them on sale, or being published (:func:`publishing`): a
    ``real_time_inventory`` push where the platform has real-time inventory, else a
    ``push_inventory`` of just those SKUs, due in ``PUSH_DEBOUNCE_S`` so that the changes of
    the next moment join it. The store a sale came from gets the hub's figure too: a push
    that carried an earlier change may have overwritten the channel's own decrement. While a
    push to a store is pending, the new SKUs join it (``enqueue_or_join``). Returns the jobs
    that will carry the change (new or joined; none for no SKUs). In the caller's
    transaction."""
    if not skus:
        return []
    rows = session.execute(
        select(Listing.store_id, Store.platform, ProductVariant.sku)
        .join(Store, Store.id == Listing.store_id)
        .join(ProductVariant, ProductVariant.product_id == Listing.product_id)
        .where(
            ProductVariant.sku.in_(sorted(set(skus))),
            or_(on_sale(), Listing.status == ListingStatus.PUBLISHING),
            Store.status == StoreStatus.ACTIVE,
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
        real_time = get_plugin(platforms[store_id]).level(Capability.REAL_TIME_INVENTORY)
        if real_time == ContractLevel.UNSUPPORTED:
            job_type, delay = PUSH_INVENTORY_JOB, PUSH_DEBOUNCE_S
        else:
            job_type, delay = Capability.REAL_TIME_INVENTORY.value, 0.0
        jobs.append(
            enqueue_or_join(
                session,
                org_id=org_id,
                job_type=job_type,
                store_id=store_id,
                skus=store_skus,
                delay_s=delay,
            )
        )
    return jobs
