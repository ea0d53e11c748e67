"""An Etsy listing's inventory as the hub last read it, remembered for a short while, so a burst
of stock changes writes each listing with one call instead of a read and a write.

Etsy replaces a listing's inventory whole on every ``updateListingInventory``, so a stock change
sends every product of the listing with its price, properties and offering, which the hub
reads first (``getListingInventory``). Under a stream of sales that read is half of Etsy's
rate limit (10 requests a second for the plugin), and the stock push falls behind. The client
keeps what it read (and then what it wrote on top) in the store's memo (Redis, shared by every
worker) and writes from it while the read is younger than ``READ_LIFETIME_S``; listings the
recurring sync lists (``getListingsByShop`` with their inventory) are read too.

What that costs, bounded: a change made on Etsy itself to the listing's other fields of the
inventory (a price, a new variation) within ``READ_LIFETIME_S`` of the hub's read is written
over by the hub's next stock change, exactly as a change made between a read and its write
always could be, in a window of ``READ_LIFETIME_S`` instead of one round trip. A write never
extends the read's life: a listing that changes all the time is still read at least once per
``READ_LIFETIME_S``. A write Etsy refuses, or a SKU the remembered inventory lacks, forgets it
and the client reads the listing again (``fusion/plugins/etsy.py``). The hub's own publish and
update forget it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from fusion.plugins.base import StoreMemo

READ_LIFETIME_S = 30.0
KEY = "etsy:inventory:"


def money(value: Mapping[str, Any]) -> Decimal:
    """An Etsy Money object (``{"amount", "divisor", ...}``) as a decimal."""
    return Decimal(int(value["amount"])) / Decimal(int(value["divisor"]))


def writable_products(products: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A read inventory's products in the shape ``updateListingInventory`` takes (prices as
    decimals, not Money; only the property fields a write sends)."""
    writable = []
    for product in products:
        offering = product["offerings"][0]
        price = money(offering["price"])
        writable.append(
            {
                "sku": product.get("sku") or "",
                "property_values": [
                    {
                        k: pv[k]
                        for k in ("property_id", "property_name", "value_ids", "values")
                        if k in pv
                    }
                    for pv in product.get("property_values") or []
                ],
                "offerings": [
                    {
                        "price": float(price),
                        "quantity": offering["quantity"],
                        "is_enabled": offering.get("is_enabled", True),
                        "readiness_state_id": offering.get("readiness_state_id"),
                    }
                ],
            }
        )
    return writable


class InventoryMemo:
    """The store's memo of its listings' inventories: ``{"read_at", "products"}`` per listing,
    ``products`` in the writable shape."""

    def __init__(self, memo: StoreMemo, clock: Callable[[], float] = time.time) -> None:
        self.memo = memo
        self.clock = clock

    def recall(self, listing_id: str) -> tuple[list[dict[str, Any]], float] | None:
        """The listing's remembered products and when they were read, while that read is
        younger than ``READ_LIFETIME_S``."""
        value = self.memo.get_many([KEY + listing_id]).get(KEY + listing_id)
        if value is None:
            return None
        try:
            entry = json.loads(value)
            products, read_at = list(entry["products"]), float(entry["read_at"])
        except (ValueError, KeyError, TypeError):
            return None
        if self.clock() - read_at >= READ_LIFETIME_S:
            return None
        return products, read_at

    def remember(
        self, inventories: Mapping[str, list[dict[str, Any]]], read_at: float | None = None
    ) -> None:
        """Keep each listing's products (writable shape) until ``READ_LIFETIME_S`` after
        ``read_at`` (now, for a fresh read)."""
        read_at = self.clock() if read_at is None else read_at
        left = READ_LIFETIME_S - (self.clock() - read_at)
        if left <= 0 or not inventories:
            return
        self.memo.put_many(
            {
                KEY + listing_id: json.dumps({"read_at": read_at, "products": products})
                for listing_id, products in inventories.items()
            },
            ttl_s=left,
        )

    def forget(self, listing_id: str) -> None:
        self.memo.forget([KEY + listing_id])
