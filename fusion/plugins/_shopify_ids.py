"""The Shopify ids an inventory push needs, remembered per store (a mixin of ShopifyClient).

``inventorySetQuantities`` names an inventory item and a location, not a SKU, so a push needs
the shop's primary location and each SKU's inventory item id. Looked up on every push, that is
three calls where one does: ``primaryLocation``, ``variantsBySku``, then the mutation. The
client keeps them in the store's memo (``StoreConnection.memo``: Redis with a TTL, shared by
every worker; see ``fusion/stores/memo.py``), filled by every answer that names them (a
lookup, a product listed, created or updated), so a steady-state push is the mutation alone.

A remembered id can go stale: a variant deleted (or deleted and made again) on Shopify, a
location removed. Shopify then refuses the whole mutation (nothing applied) with one of
``STALE_ID_CODES``; :meth:`RememberedIds.with_ids` forgets what it used, looks every id of
the batch up again, once, and sends again. A second refusal is the shop's final word
(PermanentError, as without a memo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fusion.errors import PermanentError
from fusion.plugins import _shopify_queries as q
from fusion.plugins.base import InventoryUpdate, StoreConnection

LOCATION_KEY = "shopify:location"
ITEM_KEY = "shopify:item:"  # + SKU
# inventorySetQuantities' answers that mean an id the hub holds no longer fits the shop.
STALE_ID_CODES = frozenset(
    {"INVALID_INVENTORY_ITEM", "INVALID_LOCATION", "ITEM_NOT_STOCKED_AT_LOCATION"}
)

Send = Callable[[list[dict[str, Any]], bool], None]


class StaleIds(Exception):
    """Shopify refused a push for an id it does not know (a remembered one may be stale)."""


def stale_codes(user_errors: Sequence[Mapping[str, Any]]) -> set[str]:
    """The codes of ``user_errors`` that say a remembered id went stale."""
    return {str(e.get("code")) for e in user_errors} & STALE_ID_CODES


class RememberedIds:
    """Location and SKU -> inventory item ids, from the store's memo or looked up."""

    conn: StoreConnection
    _location: str | None
    _maximum: float | None

    if TYPE_CHECKING:

        def log(self, message: str) -> None: ...

        def graphql(
            self, operation: str, query: str, variables: Mapping[str, Any], *, items: int = 1
        ) -> dict[str, Any]: ...

        def _page(
            self,
            operation: str,
            query: str,
            variables: Mapping[str, Any],
            limit: int,
            node_cost: int,
        ) -> dict[str, Any]: ...

    def primary_location(self, *, fresh: bool = False) -> str:
        """The shop's primary location id: this client's, else the store's memo's, else (and
        always when ``fresh``) asked of Shopify and remembered. Raises PermanentError when the
        shop has no location."""
        if not fresh:
            if self._location is None:
                self._location = self.conn.memo.get_many([LOCATION_KEY]).get(LOCATION_KEY)
            if self._location is not None:
                return self._location
        data = self.graphql("primaryLocation", q.LOCATIONS, {})
        nodes = data["locations"]["nodes"]
        if not nodes:
            raise PermanentError("the shop has no location to hold stock")
        self._location = str(nodes[0]["id"])
        self.conn.memo.put_many({LOCATION_KEY: self._location})
        return self._location

    def inventory_items(self, skus: Sequence[str]) -> dict[str, str]:
        """SKU -> inventory item id for the SKUs the shop has (unknown SKUs are left out),
        asked of Shopify (``variantsBySku``, pages sized to the bucket) and remembered."""
        items: dict[str, str] = {}
        unique = sorted(set(skus))
        while unique:
            size = q.page_size(q.VARIANTS_PAGE, q.VARIANT_NODE_COST, self._maximum)
            chunk, unique = unique[:size], unique[size:]
            search = " OR ".join(f'sku:"{_search_quote(sku)}"' for sku in chunk)
            data = self._page(
                "variantsBySku",
                q.VARIANTS_BY_SKU,
                {"query": search},
                len(chunk),
                q.VARIANT_NODE_COST,
            )
            for node in data["productVariants"]["nodes"]:
                if node.get("sku") in chunk:
                    items[node["sku"]] = node["inventoryItem"]["id"]
        self.conn.memo.put_many({ITEM_KEY + sku: item for sku, item in items.items()})
        return items

    def remember_variants(self, variants: Sequence[Mapping[str, Any]]) -> None:
        """Remember the inventory item id of each variant node (``sku``, ``inventoryItem``)
        an answer carried."""
        self.conn.memo.put_many(
            {
                ITEM_KEY + str(v["sku"]): str(v["inventoryItem"]["id"])
                for v in variants
                if v.get("sku") and (v.get("inventoryItem") or {}).get("id")
            }
        )

    def with_ids(self, wanted: Mapping[str, int], send: Send) -> None:
        """``send`` the ``inventorySetQuantities`` inputs of ``wanted`` (SKU -> quantity; SKUs
        the shop does not have are skipped and logged) with the remembered ids, telling it a
        stale-id refusal may be recovered (it raises StaleIds then). On StaleIds the batch's
        ids are forgotten, looked up again once and sent again, a refusal then being final."""
        try:
            quantities = self._quantities(wanted, fresh=False)
            if quantities:
                send(quantities, True)
            return
        except StaleIds as exc:
            self.log(f"shopify refused a remembered id ({exc}); looked the batch's ids up again")
        self.conn.memo.forget([LOCATION_KEY, *(ITEM_KEY + sku for sku in wanted)])
        quantities = self._quantities(wanted, fresh=True)
        if quantities:
            send(quantities, False)

    def _quantities(self, wanted: Mapping[str, int], *, fresh: bool) -> list[dict[str, Any]]:
        items = self._item_ids(list(wanted), fresh=fresh)
        missing = sorted(set(wanted) - set(items))
        if missing:
            self.log(f"shopify has no variant for SKUs {', '.join(missing)}; skipped them")
        if not items:
            return []
        location = self.primary_location(fresh=fresh)
        return [
            {
                "inventoryItemId": items[sku],
                "locationId": location,
                "quantity": quantity,
                # Explicit null opts out of compare-and-set: the hub's figure is the truth.
                "changeFromQuantity": None,
            }
            for sku, quantity in wanted.items()
            if sku in items
        ]

    def _item_ids(self, skus: Sequence[str], *, fresh: bool) -> dict[str, str]:
        known: dict[str, str] = {}
        if not fresh:
            remembered = self.conn.memo.get_many([ITEM_KEY + sku for sku in skus])
            known = {key.removeprefix(ITEM_KEY): item for key, item in remembered.items()}
        missing = [sku for sku in skus if sku not in known]
        if missing:
            known.update(self.inventory_items(missing))
        return known


def latest(updates: Sequence[InventoryUpdate]) -> dict[str, int]:
    """SKU -> quantity of ``updates`` (InventoryUpdate), the last update of a SKU winning."""
    return {u.sku: u.quantity for u in updates}


def _search_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
