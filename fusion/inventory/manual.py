"""Changes of stock a person (or an API key) makes: a relative adjustment, or the absolute
figure of a variant's create and PATCH, refused when the stock changed since the client
read it (its ETag). Each is a ledger movement, audited, and fanned out at once like a sale.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from fusion.audit.service import record
from fusion.auth.access import Access
from fusion.catalog import service as catalog
from fusion.catalog.models import ProductVariant
from fusion.errors import Conflict, NotFound, ValidationFailed
from fusion.inventory.ledger import actor_of, lock_variant, move
from fusion.inventory.models import MovementKind, StockMovement
from fusion.inventory.service import fan_out_stock

MAX_ADJUSTMENT = 1_000_000
MAX_REASON = 2000


class StockChanged(Conflict):
    """Precondition failed: the variant's stock changed since the ETag the client sent."""

    def __init__(self, variant: ProductVariant) -> None:
        tag = stock_etag(variant)
        super().__init__(
            f"Precondition failed (If-Match): the stock of SKU {variant.sku} changed since; "
            f"it is now {variant.available_quantity} (ETag {tag}).",
            details={
                "sku": variant.sku,
                "available_quantity": variant.available_quantity,
                "etag": tag,
            },
        )


@dataclass(frozen=True)
class StockChange:
    """A manual change: the movement that records it and the variant as it is now."""

    movement: StockMovement
    variant: ProductVariant

    @property
    def available_quantity(self) -> int:
        return self.variant.available_quantity

    @property
    def etag(self) -> str:
        return stock_etag(self.variant)


def stock_etag(variant: ProductVariant) -> str:
    """The variant's weak ETag: it changes exactly when its available quantity does."""
    return f'W/"{variant.id.hex}-{variant.stock_version}"'


def etag_matches(if_match: str, variant: ProductVariant) -> bool:
    """Whether an ``If-Match`` header value (``*`` or a list of tags, weak or strong) names
    the variant's current stock (compared weakly: the tag says nothing about bytes)."""
    current = stock_etag(variant).removeprefix("W/")
    for tag in (t.strip() for t in if_match.split(",")):
        if tag == "*" or tag.removeprefix("W/") == current:
            return True
    return False


def adjust(
    session: Session, access: Access, variant_id: uuid.UUID, *, delta: int, reason: str
) -> StockChange:
    """Add ``delta`` (a return to shelf, damage, a correction) to the variant's stock, with
    the reason, audited and fanned out. Raises NotFound for an unknown variant,
    ValidationFailed for a zero or absurd delta (|delta| > MAX_ADJUSTMENT) or a blank
    reason, InsufficientStock (a Conflict naming the SKU and figure) below zero."""
    if isinstance(delta, bool) or not isinstance(delta, int) or not delta:
        raise ValidationFailed(fields={"delta": ["Must be a non-zero integer."]})
    if abs(delta) > MAX_ADJUSTMENT:
        raise ValidationFailed(fields={"delta": [f"Must be at most {MAX_ADJUSTMENT} either way."]})
    if not reason.strip():
        raise ValidationFailed(fields={"reason": ["Say why the stock changes."]})
    variant = _locked(session, variant_id)
    before = variant.available_quantity
    movement = move(
        session,
        variant=variant,
        kind=MovementKind.MANUAL_ADJUSTMENT,
        actor=actor_of(access.principal),
        reason=reason.strip()[:MAX_REASON],
        delta=delta,
    )
    return _after(session, access, variant, movement, "stock.adjust", before)


def create_variant(
    session: Session, access: Access, product_id: uuid.UUID, **fields: Any
) -> ProductVariant:
    """A new variant (``fusion.catalog.service.create_variant``) whose opening figure,
    ``available_quantity`` (0 if not given), is its first ledger movement (a manual set)."""
    quantity = int(fields.pop("available_quantity", 0))
    variant = catalog.create_variant(session, access, product_id, **fields)
    movement = move(
        session,
        variant=variant,
        kind=MovementKind.MANUAL_SET,
        actor=actor_of(access.principal),
        reason="opening stock of a new variant",
        set_to=quantity,
    )
    _after(session, access, variant, movement, "stock.set", 0)
    return variant


def update_variant(
    session: Session,
    access: Access,
    variant_id: uuid.UUID,
    *,
    if_match: str | None = None,
    **changes: Any,
) -> ProductVariant:
    """Change a variant's fields; ``available_quantity`` is an absolute set, a manual-set
    movement with the delta from the figure it replaces, fanned out at once. With
    ``if_match`` the change is made only if it names the variant's current stock ETag, else
    StockChanged (a Conflict with the current figure and ETag) and nothing changes. Raises
    NotFound, Conflict (SKU taken) as the catalog does."""
    quantity = changes.pop("available_quantity", None)
    variant = _locked(session, variant_id)
    if if_match is not None and not etag_matches(if_match, variant):
        raise StockChanged(variant)
    if changes:
        catalog.update_variant(session, access, variant_id, **changes)
    if quantity is not None:
        before = variant.available_quantity
        movement = move(
            session,
            variant=variant,
            kind=MovementKind.MANUAL_SET,
            actor=actor_of(access.principal),
            reason=f"set to {quantity} (was {before})",
            set_to=int(quantity),
        )
        _after(session, access, variant, movement, "stock.set", before)
    return variant


def _locked(session: Session, variant_id: uuid.UUID) -> ProductVariant:
    variant = lock_variant(session, variant_id)
    if variant is None:
        raise NotFound("No such variant.")
    return variant


def _after(
    session: Session,
    access: Access,
    variant: ProductVariant,
    movement: StockMovement,
    action: str,
    before: int,
) -> StockChange:
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action=action,
        resource_type="product_variant",
        resource_id=variant.id,
        before={"available_quantity": before},
        after={
            "available_quantity": movement.on_hand_after,
            "delta": movement.delta,
            "reason": movement.reason,
            "movement_id": str(movement.id),
        },
    )
    fan_out_stock(session, org_id=access.org_id, skus=[variant.sku])
    return StockChange(movement, variant)
