"""What adoption does with each listing a store already sells: matched to the catalog by SKU
(a barcode match is named, never linked on its own), and every conflict said.

Pure: it decides from what the platform showed and what the catalog holds, and writes
nothing. The hub sells by SKU (a sale takes stock from the variant of the order line's SKU, a
push sends each SKU's figure), so a listing is linked only when every variant of it has a SKU
and the SKUs it shares with the catalog are of one product. A listing with no SKU in the
catalog may become a new product. A SKU on two listings of the store, a catalog product
listed there already under another id, a variant matched only by its barcode (its SKU is not
the catalog's) and a SKU being deleted keep the listing out. A stock figure that differs from
the hub's is noted and does not block: the hub's figure wins and is pushed.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion.onboarding.models import AdoptionAction

# Conflict kinds. Those of BLOCKING keep the listing out of the adoption.
SKU_ON_SEVERAL_LISTINGS = "sku_on_several_listings"
NO_SKU = "no_sku"
BARCODE_ONLY = "barcode_only"
SEVERAL_PRODUCTS = "several_products"
LISTED_ALREADY = "product_listed_already"
BEING_DELETED = "being_deleted"
NO_PRICE = "no_price"
STOCK_DIFFERS = "stock_differs"
SHARED_REASON = "the store sells this SKU on more than one listing"
BLOCKING = frozenset(
    {
        SKU_ON_SEVERAL_LISTINGS,
        NO_SKU,
        BARCODE_ONLY,
        SEVERAL_PRODUCTS,
        LISTED_ALREADY,
        BEING_DELETED,
        NO_PRICE,
    }
)


@dataclass(frozen=True)
class CatalogVariant:
    """What matching needs of a catalog variant."""

    sku: str
    product_id: uuid.UUID
    available: int
    barcode: str | None = None
    deleting: bool = False


@dataclass(frozen=True)
class Decision:
    """What adoption does with one listing: its action, the catalog product it is linked
    to (LINK, ADOPTED), the remote SKUs the catalog lacks, and the conflicts found."""

    action: AdoptionAction
    product_id: uuid.UUID | None = None
    new_skus: tuple[str, ...] = ()
    conflicts: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def shared_skus(listings: Iterable[Sequence[Mapping[str, Any]]]) -> set[str]:
    """The SKUs found on more than one of ``listings`` (each a list of variants)."""
    counts: Counter[str] = Counter()
    for variants in listings:
        counts.update({str(v.get("sku") or "") for v in variants} - {""})
    return {sku for sku, n in counts.items() if n > 1}


def decide(
    variants: Sequence[Mapping[str, Any]],
    *,
    external_id: str,
    by_sku: Mapping[str, CatalogVariant],
    by_barcode: Mapping[str, CatalogVariant],
    listed: Mapping[uuid.UUID, str | None],
    shared: set[str],
) -> Decision:
    """The decision for one listing of ``variants`` (``{sku, quantity, price, barcode}``).
    ``by_sku``/``by_barcode``: the catalog's variants; ``listed``: product id -> the external
    id of its listing on this store (None: a listing never published, which adoption fills
    in); ``shared``: the SKUs on more than one listing of the store (:func:`shared_skus`)."""
    if not variants:
        return Decision(AdoptionAction.CONFLICT, conflicts=(_conflict(NO_SKU, "", "no variant"),))
    conflicts: list[dict[str, Any]] = []
    products: set[uuid.UUID] = set()
    new: list[str] = []
    for variant in variants:
        sku = str(variant.get("sku") or "")
        hub = by_sku.get(sku) if sku else None
        if sku in shared:
            conflicts.append(_conflict(SKU_ON_SEVERAL_LISTINGS, sku, SHARED_REASON))
        if hub is None:
            barcode = variant.get("barcode") or None
            found = _unmatched(sku, variant, by_barcode.get(barcode) if barcode else None)
            conflicts += found
            if not found:
                new.append(sku)
            continue
        products.add(hub.product_id)
        if hub.deleting:
            conflicts.append(_conflict(BEING_DELETED, sku, "the catalog is deleting this SKU"))
        remote = int(variant.get("quantity") or 0)
        if remote != hub.available:
            reason = f"the channel shows {remote}, the hub {hub.available}: the hub's figure wins"
            conflicts.append(
                {**_conflict(STOCK_DIFFERS, sku, reason), "hub": hub.available, "channel": remote}
            )
    if len(products) > 1:
        conflicts.append(
            _conflict(SEVERAL_PRODUCTS, "", "its SKUs are of several catalog products")
        )
    product_id = next(iter(products)) if len(products) == 1 else None
    if product_id is not None and listed.get(product_id) is not None:
        if listed[product_id] == external_id:
            return Decision(AdoptionAction.ADOPTED, product_id)
        conflicts.append(
            _conflict(LISTED_ALREADY, "", f"the product is on this store as {listed[product_id]}")
        )
    if any(c["kind"] in BLOCKING for c in conflicts):
        return Decision(AdoptionAction.CONFLICT, product_id, tuple(new), tuple(conflicts))
    action = AdoptionAction.CREATE if product_id is None else AdoptionAction.LINK
    return Decision(action, product_id, tuple(new), tuple(conflicts))


def _unmatched(
    sku: str, variant: Mapping[str, Any], twin: CatalogVariant | None
) -> list[dict[str, Any]]:
    """Why a variant whose SKU the catalog lacks cannot become a new SKU (none: it can)."""
    if twin is not None:
        reason = (
            f"its barcode is the catalog's SKU {twin.sku}, but its SKU is {sku or 'empty'}: "
            "give both the same SKU, then adopt again"
        )
        return [_conflict(BARCODE_ONLY, sku, reason)]
    if not sku:
        return [_conflict(NO_SKU, "", "a variant has no SKU: the hub sells by SKU")]
    if variant.get("price") is None:
        return [_conflict(NO_PRICE, sku, "the platform gave no price")]
    return []


def _conflict(kind: str, sku: str, reason: str) -> dict[str, Any]:
    return {"kind": kind, "sku": sku, "reason": reason}
