"""The stock ledger: :func:`move` is the one way a SKU's stock changes.

It locks the variant's row, changes ``available_quantity`` and appends the movement that
explains it, in the caller's transaction, so the figure and the ledger never disagree and
concurrent orders and adjustments of one SKU apply one after the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.auth.access import Principal
from fusion.catalog.models import Listing, ProductVariant
from fusion.errors import Conflict
from fusion.inventory.models import MovementKind, StockMovement
from fusion.notifications import service as notifications
from fusion.notifications.models import Event
from fusion.stores.models import Store
from fusion.stores.stock_rules import channel_shown

SYSTEM_ACTOR = "system"


class InsufficientStock(Conflict):
    """The change would take the stock below zero."""

    def __init__(self, sku: str, available: int, delta: int) -> None:
        super().__init__(
            f"SKU {sku} holds {available}: a change of {delta} would take it below zero.",
            details={"sku": sku, "available_quantity": available},
        )
        self.sku, self.available, self.delta = sku, available, delta


def actor_of(principal: Principal | None) -> str:
    """How a movement names who made it: ``user:<id>``, ``api_key:<id>`` or ``system``."""
    if principal is None:
        return SYSTEM_ACTOR
    return f"{principal.actor_type.value}:{principal.actor_id}"


def lock_variant(session: Session, variant_id: uuid.UUID) -> ProductVariant | None:
    """The variant, row-locked until the transaction ends and re-read from the database (the
    figure another transaction committed while this one waited is the one seen)."""
    session.flush()
    return session.scalars(
        select(ProductVariant)
        .where(ProductVariant.id == variant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def move(
    session: Session,
    *,
    variant: ProductVariant,
    kind: MovementKind,
    actor: str,
    reason: str,
    delta: int | None = None,
    set_to: int | None = None,
    order_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
) -> StockMovement:
    """Change ``variant``'s available quantity by ``delta`` or to ``set_to`` (exactly one)
    and append the movement, in the caller's transaction. The variant's row is locked first
    and its figure re-read, so the delta of an absolute set is taken from the figure it
    replaces. A change of the figure bumps ``stock_version``; a zero change is recorded but
    bumps nothing; a change to 0 is counted (``fusion_stock_hit_zero_total``) once the
    caller's transaction commits. Raises InsufficientStock (nothing changed) when the result
    would be below zero, ValueError when neither or both of ``delta`` and ``set_to`` are given."""
    if (delta is None) == (set_to is None):
        raise ValueError("give exactly one of delta and set_to")
    locked = lock_variant(session, variant.id)
    if locked is None:
        raise ValueError(f"variant {variant.id} does not exist")
    before = locked.available_quantity
    after = before + delta if delta is not None else int(set_to or 0)
    if after < 0:
        raise InsufficientStock(locked.sku, before, after - before)
    if after != before:
        locked.available_quantity = after
        locked.stock_version += 1
        if after == 0:
            telemetry.STOCK_HIT_ZERO.inc_on_commit(session)
        if after < before:
            announce_stock_out(session, locked, kind=kind, before=before)
    movement = StockMovement(
        org_id=locked.org_id,
        variant_id=locked.id,
        sku=locked.sku,
        kind=kind,
        delta=after - before,
        on_hand_after=after,
        actor=actor,
        job_id=job_id,
        order_id=order_id,
        reason=reason,
    )
    session.add(movement)
    session.flush()
    return movement


def announce_stock_out(
    session: Session, variant: ProductVariant, *, kind: MovementKind, before: int
) -> None:
    """Queue ``stock.out`` for the org's channels when a fall of ``variant``'s figure from
    ``before`` takes what some channel shows to 0: every channel, when the hub's figure is 0;
    only those whose rules (a buffer, "show 0 below N", a percentage) round the new figure to
    0, when it is not. Each such channel is named with its store; channels already showing 0
    are not. Once per stock version: the same zero is never announced twice."""
    after = variant.available_quantity
    channels = [
        (listing_id, store_id, name, platform)
        for listing_id, store_id, name, platform, store_rules, listing_rules in session.execute(
            select(
                Listing.id, Store.id, Store.name, Store.platform,
                Store.stock_rules, Listing.stock_rules,
            )
            .join(Store, Store.id == Listing.store_id)
            .where(Listing.product_id == variant.product_id)
            .order_by(Store.id)
        )
        if channel_shown(after, store_rules, listing_rules) == 0
        and channel_shown(before, store_rules, listing_rules) > 0
    ]  # fmt: skip
    if not channels:
        return
    notifications.emit(
        session,
        org_id=variant.org_id,
        event=Event.STOCK_OUT,
        data={
            "sku": variant.sku,
            "variant_id": str(variant.id),
            "product_id": str(variant.product_id),
            "previous_quantity": before,
            "available_quantity": after,
            "cause": kind.value,
            "channels": [
                {
                    "listing_id": str(listing_id),
                    "store_id": str(store_id),
                    "store_name": name,
                    "platform": platform,
                }
                for listing_id, store_id, name, platform in channels
            ],
        },
        dedup_key=f"stock.out:{variant.id}:{variant.stock_version}",
        link_path=f"/orgs/{variant.org_id}/variants/{variant.id}/stock",
    )


def note_sync_corrections(
    session: Session, *, job_id: uuid.UUID, corrections: Mapping[str, str]
) -> list[StockMovement]:
    """One ``sync_correction`` movement per SKU of ``corrections`` (SKU → why): a channel
    held another figure than the hub's and was set back to it. The hub's figure does not
    change (delta 0); the ledger shows when and why the channel was corrected."""
    variants = session.scalars(
        select(ProductVariant)
        .where(ProductVariant.sku.in_(sorted(corrections)))
        .order_by(ProductVariant.id)
    ).all()
    return [
        move(
            session,
            variant=variant,
            kind=MovementKind.SYNC_CORRECTION,
            actor=SYSTEM_ACTOR,
            reason=corrections[variant.sku],
            delta=0,
            job_id=job_id,
        )
        for variant in variants
    ]
