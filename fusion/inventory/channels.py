"""What each channel was sent and holds, per listing and SKU, and the rules that say what it
is shown. Pushes and read-backs are recorded by the inventory jobs, in their own short
transactions, after the platform answered."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion.audit.service import record, snapshot
from fusion.auth.access import Access
from fusion.catalog.models import Listing, ProductVariant
from fusion.errors import NotFound, ValidationFailed
from fusion.inventory.models import ListingStock
from fusion.inventory.service import fan_out_stock
from fusion.jobs.context import JobContext
from fusion.plugins.base import InventoryUpdate
from fusion.stores.models import Store
from fusion.stores.stock_rules import InvalidRules, StockRules, channel_shown


@dataclass(frozen=True)
class ChannelStock:
    """One SKU of one listing: the hub's figure, what the channel should show, what it was
    last sent and confirmed, what it held when last read, and whether that is drift."""

    sku: str
    available: int
    shown: int
    last_pushed: int | None
    pushed_at: datetime | None
    confirmed_at: datetime | None
    remote: int | None
    read_at: datetime | None

    @property
    def drift(self) -> bool:
        """The channel was read and held another figure than it should show, and no push of
        the figure it should show was confirmed since (a corrected drift is no drift)."""
        if self.remote is None or self.remote == self.shown:
            return False
        corrected = (
            self.last_pushed == self.shown
            and self.confirmed_at is not None
            and self.read_at is not None
            and self.confirmed_at > self.read_at
        )
        return not corrected


def _listings_by_sku(
    session: Session, store_id: uuid.UUID, skus: Sequence[str]
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(listing id, org id, sku) of the store's listings of ``skus``."""
    if not skus:
        return []
    return [
        (row[0], row[1], row[2])
        for row in session.execute(
            select(Listing.id, Listing.org_id, ProductVariant.sku)
            .join(ProductVariant, ProductVariant.product_id == Listing.product_id)
            .where(Listing.store_id == store_id, ProductVariant.sku.in_(sorted(set(skus))))
            .order_by(Listing.id, ProductVariant.sku)
        )
    ]


def _upsert(session: Session, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        return
    statement = pg_insert(ListingStock).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["listing_id", "sku"],
            set_={**{c: statement.excluded[c] for c in columns}, "updated_at": datetime.now(UTC)},
        )
    )


def record_pushed(
    session: Session,
    store_id: uuid.UUID,
    updates: Sequence[InventoryUpdate],
    confirmed_at: datetime,
) -> int:
    """Record that the store's platform took ``updates`` (its call answered without error at
    ``confirmed_at``, which is therefore also when they were pushed), for each listing of the
    store with those SKUs. Returns the rows written. In the caller's transaction."""
    quantity = {u.sku: u.quantity for u in updates}
    rows = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "listing_id": listing_id,
            "sku": sku,
            "pushed_quantity": quantity[sku],
            "pushed_at": confirmed_at,
            "confirmed_at": confirmed_at,
        }
        for listing_id, org_id, sku in _listings_by_sku(session, store_id, list(quantity))
    ]
    _upsert(session, rows, ("pushed_quantity", "pushed_at", "confirmed_at"))
    return len(rows)


def record_remote(
    session: Session, store_id: uuid.UUID, quantities: Mapping[str, int], read_at: datetime
) -> int:
    """Record what the store's platform held of each SKU when read at ``read_at``, for each
    listing of the store with that SKU (SKUs the hub does not list there are ignored).
    Returns the rows written. In the caller's transaction."""
    rows = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "listing_id": listing_id,
            "sku": sku,
            "remote_quantity": int(quantities[sku]),
            "read_at": read_at,
        }
        for listing_id, org_id, sku in _listings_by_sku(session, store_id, list(quantities))
    ]
    _upsert(session, rows, ("remote_quantity", "read_at"))
    return len(rows)


def note_pushed(ctx: JobContext, store_id: uuid.UUID, updates: Sequence[InventoryUpdate]) -> None:
    """:func:`record_pushed` in a transaction of the job's own, confirmed now."""
    if updates:
        with ctx.session() as session:
            record_pushed(session, store_id, updates, datetime.now(UTC))


def note_remote(ctx: JobContext, store_id: uuid.UUID, quantities: Mapping[str, int]) -> None:
    """:func:`record_remote` in a transaction of the job's own, read now."""
    with ctx.session() as session:
        record_remote(session, store_id, quantities, datetime.now(UTC))


def listing_stock(session: Session, listing_id: uuid.UUID) -> list[ChannelStock]:
    """Each SKU of the listing's product as its channel sees it, by SKU. Raises NotFound for
    an unknown listing."""
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound("No such listing.")
    store = session.get(Store, listing.store_id)
    store_rules = store.stock_rules if store is not None else {}
    rows = session.execute(
        select(ProductVariant.sku, ProductVariant.available_quantity, ListingStock)
        .outerjoin(
            ListingStock,
            and_(ListingStock.listing_id == listing.id, ListingStock.sku == ProductVariant.sku),
        )
        .where(ProductVariant.product_id == listing.product_id)
        .order_by(ProductVariant.sku)
    ).all()
    return [
        ChannelStock(
            sku=sku,
            available=available,
            shown=channel_shown(available, store_rules, listing.stock_rules),
            last_pushed=held.pushed_quantity if held else None,
            pushed_at=held.pushed_at if held else None,
            confirmed_at=held.confirmed_at if held else None,
            remote=held.remote_quantity if held else None,
            read_at=held.read_at if held else None,
        )
        for sku, available, held in rows
    ]


def checked_rules(raw: Mapping[str, Any]) -> dict[str, int]:
    """``raw`` as stored rules (unset keys dropped). Raises ValidationFailed naming the key."""
    try:
        return StockRules.parse(raw).as_dict()
    except InvalidRules as exc:
        raise ValidationFailed(fields={"stock_rules": [str(exc)]}) from None


def set_listing_rules(
    session: Session, access: Access, listing_id: uuid.UUID, rules: Mapping[str, Any]
) -> Listing:
    """Replace the listing's stock rules (they override its store's key by key), audited,
    and push the figures they change at once. Raises NotFound, ValidationFailed."""
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound("No such listing.")
    before = snapshot(listing, ("stock_rules",))
    listing.stock_rules = checked_rules(rules)
    session.flush()
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="listing.stock_rules",
        resource_type="listing",
        resource_id=listing.id,
        before=before,
        after=snapshot(listing, ("stock_rules",)),
    )
    skus = session.scalars(
        select(ProductVariant.sku).where(ProductVariant.product_id == listing.product_id)
    ).all()
    fan_out_stock(session, org_id=access.org_id, skus=list(skus))
    return listing


def store_rules_changed(session: Session, org_id: uuid.UUID, store_id: uuid.UUID) -> None:
    """Push at once every SKU listed on the store: its stock rules changed."""
    skus = session.scalars(
        select(ProductVariant.sku)
        .join(Listing, Listing.product_id == ProductVariant.product_id)
        .where(Listing.store_id == store_id)
    ).all()
    fan_out_stock(session, org_id=org_id, skus=sorted(set(skus)))
