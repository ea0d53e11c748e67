"""Etsy through Open API v3.

- Every call sends ``x-api-key: {keystring}:{shared_secret}`` and ``Authorization: Bearer
  {access_token}`` (Etsy's OAuth tokens already carry the ``{user_id}.`` prefix). Paths are
  ``{base_url}/v3/application/...``; the base URL is ``https://openapi.etsy.com`` for real.
- Listings: ``createDraftListing`` / ``updateListing`` (form-encoded), ``deleteListing``,
  ``getListingsByShop`` (every state the hub manages, with ``includes=Inventory``). Variants are
  the listing inventory's products (``PUT /listings/{id}/inventory`` replaces it whole); several
  variants vary on Etsy's custom property 513 with the SKU as its value.
- Images: ``uploadListingImage`` (multipart), moved by rank and deleted as the hub's change
  (``fusion/plugins/_etsy_images.py``). Listings stay drafts (the merchant activates them on
  Etsy, which needs an image and a shipping profile).
- Idempotent create: Etsy listings hold no private key, so the hub tags each listing it creates
  with ``fh`` + 16 hex digits of the draft's idempotency key and looks for that tag before
  creating. A create retried after a timeout finds the first attempt's listing and finishes it.
- Bulk (workaround): Etsy has no bulk endpoint; ``bulk_set_inventory`` sends one inventory call
  per listing, paced by the store's bucket, and says so in the job log.
- Real-time inventory is unsupported (refused at enqueue): Etsy stock goes out with the
  recurring sync, which uses ``set_inventory``.
- Orders: ``order.paid`` (and other ``order.*``) webhooks signed the Standard Webhooks way;
  ``fetch_orders`` reconciles with ``getShopReceipts(min_last_modified=...)``.

- Tokens: with a ``refresh_token`` the access token is refreshed before it expires and after
  a 401 saying it expired, once across workers (``fusion/plugins/_etsy_oauth.py``).

Store fields: ``external_id`` = the numeric shop id; ``credentials`` = ``keystring``,
``shared_secret``, ``access_token``, optionally ``refresh_token`` (and the hub's own
``access_token_refresh_at``); ``settings`` (optional) = ``who_made``, ``when_made``,
``shipping_profile_id``, ``readiness_state_id``. A listing's ``taxonomy_id`` is the store's
mapping of the product's category (``draft.category``, sent on create and update): Etsy
requires one, so a product the store maps to none fails its listing naming ``taxonomy_id``.
Mapped variant attributes (``VariantDraft.options``, at most two) become the custom
properties 513 and 514 under the mapped names; otherwise several variants vary on 513 by SKU.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fusion.errors import MalformedWebhook, PermanentError
from fusion.plugins._etsy_images import ListingImages, check_image_types
from fusion.plugins._etsy_inventory import InventoryMemo, money, writable_products
from fusion.plugins._etsy_oauth import TokenRefresh
from fusion.plugins.base import (
    AuthType,
    Capability,
    HttpClient,
    HttpResponse,
    InventoryUpdate,
    ItemRefusal,
    OrderLine,
    PlatformClient,
    Plugin,
    ProductDraft,
    ProductPage,
    RemoteOrder,
    RemoteProduct,
    RemoteVariant,
    SettingSpec,
    SettingType,
    Shipment,
    ShipmentAnswer,
    StoreConnection,
    WebhookEvent,
)
from fusion.plugins.http import HTTP_SETTINGS
from fusion.plugins.models import ContractLevel
from fusion.ratelimit.spec import ApiCall, RateLimitSpec
from fusion.security.signing import verify_standard_webhook

API = "/v3/application"
PAGE = 100
MANAGED_STATES = ("active", "draft", "inactive")
VARIANT_PROPERTY = 513  # Etsy's custom property for a seller-defined variation
KEY_TAG_PREFIX = "fh"

# What Etsy asks of every new listing.
WHO_MADE = SettingSpec(
    "who_made",
    SettingType.STRING,
    "Who made the store's new listings, as Etsy asks it.",
    default="i_did",
    choices=("i_did", "someone_else", "collective"),
)
WHEN_MADE = SettingSpec(
    "when_made",
    SettingType.STRING,
    "When the store's new listings were made, in Etsy's words (made_to_order, 2020_2025, "
    "before_2006, ...); Etsy refuses a value it does not know.",
    default="made_to_order",
)
SHIPPING_PROFILE_ID = SettingSpec(
    "shipping_profile_id",
    SettingType.INTEGER,
    "The shipping profile of the store's new listings (Etsy requires one for physical items "
    "once they are activated).",
    minimum=1,
)
READINESS_STATE_ID = SettingSpec(
    "readiness_state_id",
    SettingType.INTEGER,
    "The processing profile (readiness state) of every offering the hub writes.",
    minimum=1,
)
SETTINGS = (
    WHO_MADE,
    WHEN_MADE,
    SHIPPING_PROFILE_ID,
    READINESS_STATE_ID,
    *HTTP_SETTINGS,
)


def key_tag(idempotency_key: str) -> str:
    """The listing tag that marks the listing created for ``idempotency_key`` (18 characters,
    within Etsy's 20-character tag limit)."""
    return KEY_TAG_PREFIX + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


class EtsyClient(TokenRefresh, ListingImages, PlatformClient):
    @property
    def shop_id(self) -> str:
        return self.conn.external_id

    @property
    def _inventories(self) -> InventoryMemo:
        return InventoryMemo(self.conn.memo)

    def _headers(self) -> dict[str, str]:
        credentials = self._credentials
        key = f"{str.__str__(credentials['keystring'])}:{str.__str__(credentials['shared_secret'])}"
        return {
            "x-api-key": key,
            "Authorization": f"Bearer {str.__str__(credentials['access_token'])}",
        }

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: Mapping[str, Any] | None = None,
        form: Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        expect: Sequence[int] = (),
        multipart: tuple[bytes, str] | None = None,
    ) -> HttpResponse:
        if self._due():
            self._refresh()
        data: bytes | None = None
        if form is not None:
            data = urlencode([(k, str(v)) for k, v in form]).encode()
        if multipart is not None:  # (body, its Content-Type): _etsy_images
            data = multipart[0]
        for attempt in (1, 2):
            headers = self._headers()
            if form is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            if multipart is not None:
                headers["Content-Type"] = multipart[1]
            response = self.http.request(
                method,
                f"{API}{path}",
                call=ApiCall(operation=operation),
                headers=headers,
                params=params,
                data=data,
                json=json_body,
                expect=(*expect, 401),
            )
            if attempt == 1 and self.says_expired(response) and self._refreshable():
                self._refresh()
                continue
            break
        if response.status == 401 and 401 not in expect:
            raise PermanentError(f"etsy {method} {API}{path} refused the store's credentials (401)")
        return response

    # -- listings -------------------------------------------------------------------------------

    def _listings_page(self, state: str, offset: int) -> dict[str, Any]:
        """One page of ``getListingsByShop`` with the listings' inventories (remembered)."""
        body: dict[str, Any] = self._call(
            "GET",
            f"/shops/{self.shop_id}/listings",
            "getListingsByShop",
            params={"state": state, "limit": PAGE, "offset": offset, "includes": "Inventory"},
        ).json()
        self._remember_inventories(body["results"])
        return body

    def _remember_inventories(self, listings: Sequence[Mapping[str, Any]]) -> None:
        self._inventories.remember(
            {
                str(listing["listing_id"]): writable_products(listing["inventory"]["products"])
                for listing in listings
                if (listing.get("inventory") or {}).get("products")
            }
        )

    def _listings(self, state: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self._listings_page(state, offset)
            yield from body["results"]
            offset += len(body["results"])
            if not body["results"] or offset >= body["count"]:
                return

    def _all_listings(self) -> Iterator[dict[str, Any]]:
        for state in MANAGED_STATES:
            yield from self._listings(state)

    def list_products(self) -> list[RemoteProduct]:
        return [_remote_product(listing) for listing in self._all_listings()]

    def list_products_page(self, cursor: str | None) -> ProductPage:
        """One page of ``getListingsByShop``; the cursor is ``<state>:<offset>``, through the
        managed states in turn."""
        state, _, at = (cursor or f"{MANAGED_STATES[0]}:0").partition(":")
        if state not in MANAGED_STATES or not at.isdigit():
            raise PermanentError(f"not an Etsy listings cursor: {cursor!r}")
        offset = int(at)
        body = self._listings_page(state, offset)
        offset += len(body["results"])
        following = MANAGED_STATES.index(state) + 1
        if body["results"] and offset < body["count"]:
            after: str | None = f"{state}:{offset}"
        elif following < len(MANAGED_STATES):
            after = f"{MANAGED_STATES[following]}:0"
        else:
            after = None
        return ProductPage([_remote_product(lst) for lst in body["results"]], after)

    def create_product(self, draft: ProductDraft) -> RemoteProduct:
        """Create a draft listing and its inventory, or finish the one an earlier attempt with
        the same idempotency key created (found by its key tag)."""
        _check_draft(draft)
        tag = key_tag(draft.idempotency_key or draft.variants[0].sku)
        existing = next(
            (lst for lst in self._all_listings() if tag in (lst.get("tags") or [])), None
        )
        if existing is not None:
            listing_id = str(existing["listing_id"])
            self.log(f"etsy listing {listing_id} from an earlier attempt found by tag; reusing it")
        else:
            settings = self.conn.settings
            form: list[tuple[str, Any]] = [
                ("title", draft.title),
                ("description", draft.description or draft.title),
                ("price", f"{draft.variants[0].price:.2f}"),
                ("quantity", sum(v.quantity for v in draft.variants)),
                ("who_made", WHO_MADE.value(settings)),
                ("when_made", WHEN_MADE.value(settings)),
                ("taxonomy_id", _taxonomy_id(draft)),
                ("tags", tag),
            ]
            for optional in (SHIPPING_PROFILE_ID, READINESS_STATE_ID):
                if optional.value(settings):
                    form.append((optional.name, optional.value(settings)))
            created = self._call(
                "POST", f"/shops/{self.shop_id}/listings", "createDraftListing", form=form
            ).json()
            listing_id = str(created["listing_id"])
        self._put_inventory(listing_id, draft)
        return _with_images(self._get(listing_id), self._sync_images(listing_id, draft))

    def update_product(self, external_id: str, draft: ProductDraft) -> RemoteProduct:
        """Title and description, then the whole inventory (variants, prices, quantities)."""
        _check_draft(draft)
        form: list[tuple[str, Any]] = [("title", draft.title), ("taxonomy_id", _taxonomy_id(draft))]
        if draft.description:
            form.append(("description", draft.description))
        self._call(
            "PATCH", f"/shops/{self.shop_id}/listings/{external_id}", "updateListing", form=form
        )
        self._put_inventory(external_id, draft)
        return _with_images(self._get(external_id), self._sync_images(external_id, draft))

    def delete_product(self, external_id: str) -> None:
        """Delete the listing; one already gone (404) counts as deleted."""
        response = self._call("DELETE", f"/listings/{external_id}", "deleteListing", expect=(404,))
        self._inventories.forget(external_id)
        if response.status == 404:
            self.log(f"etsy listing {external_id} was already deleted")

    def _get(self, listing_id: str) -> RemoteProduct:
        listing = self._call(
            "GET", f"/listings/{listing_id}", "getListing", params={"includes": "Inventory"}
        ).json()
        self._remember_inventories([listing])
        return _remote_product(listing)

    def _put_inventory(self, listing_id: str, draft: ProductDraft) -> None:
        properties = _property_values(draft)
        products = [
            _inventory_product(v.sku, v.price, v.quantity, properties[v.sku], self.conn.settings)
            for v in draft.variants
        ]
        self._inventories.forget(listing_id)  # the listing's _get after this reads it again
        self._send_inventory(listing_id, products)

    def _send_inventory(self, listing_id: str, products: list[dict[str, Any]]) -> None:
        # Price, quantity and SKU vary on every property the products vary on.
        on_property = sorted(
            {pv["property_id"] for p in products for pv in p.get("property_values") or []}
        )
        self._call(
            "PUT",
            f"/listings/{listing_id}/inventory",
            "updateListingInventory",
            json_body={
                "products": products,
                "price_on_property": on_property,
                "quantity_on_property": on_property,
                "sku_on_property": on_property,
            },
        )

    # -- inventory ------------------------------------------------------------------------------

    def set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        """Set quantities listing by listing: read its inventory, change the SKUs' quantities,
        write it back whole (Etsy replaces the inventory on every write)."""
        for listing_id, quantities in self._by_listing(updates)[0].items():
            self._set_listing_quantities(listing_id, quantities)

    def bulk_set_inventory(self, updates: Sequence[InventoryUpdate]) -> list[ItemRefusal]:
        """One inventory call per listing; the SKUs no listing holds are skipped."""
        by_listing, skipped = self._by_listing(updates)
        self.log(
            f"etsy has no bulk inventory endpoint: updating {len(by_listing)} listings with one "
            "inventory call each, paced by the store's rate limit"
        )
        for listing_id, quantities in by_listing.items():
            skipped += self._set_listing_quantities(listing_id, quantities)
        return [ItemRefusal(sku, "no Etsy listing holds this SKU", skipped=True) for sku in skipped]

    def _by_listing(
        self, updates: Sequence[InventoryUpdate]
    ) -> tuple[dict[str, dict[str, int]], list[str]]:
        grouped: dict[str, dict[str, int]] = {}
        skipped: list[str] = []
        unknown = [u for u in updates if not u.external_id]
        sku_listing: dict[str, str] = {}
        if unknown:
            # Without the listing id the SKU has to be found among the shop's listings.
            for listing in self._all_listings():
                for product in (listing.get("inventory") or {}).get("products", []):
                    if product.get("sku"):
                        sku_listing[product["sku"]] = str(listing["listing_id"])
        for update in updates:
            listing_id = update.external_id or sku_listing.get(update.sku)
            if listing_id is None:
                self.log(f"etsy has no listing with SKU {update.sku}; skipped it")
                skipped.append(update.sku)
                continue
            grouped.setdefault(listing_id, {})[update.sku] = update.quantity
        return grouped, skipped

    def _set_listing_quantities(self, listing_id: str, quantities: Mapping[str, int]) -> list[str]:
        """Write the SKUs' quantities into the listing's inventory (the remembered one while
        it is fresh, else read now: ``fusion/plugins/_etsy_inventory.py``); returns the SKUs
        it does not hold (skipped)."""
        recalled = self._inventories.recall(listing_id)
        if recalled is not None:
            products, read_at = recalled
            if not set(quantities) - {p["sku"] for p in products}:
                try:
                    return self._write_quantities(listing_id, products, read_at, quantities)
                except PermanentError as exc:
                    self.log(
                        f"etsy refused listing {listing_id}'s inventory as the hub last read it "
                        f"({exc}); reading it again"
                    )
            self._inventories.forget(listing_id)
        inventory = self._call(
            "GET", f"/listings/{listing_id}/inventory", "getListingInventory"
        ).json()
        return self._write_quantities(
            listing_id, writable_products(inventory["products"]), None, quantities
        )

    def _write_quantities(
        self,
        listing_id: str,
        products: list[dict[str, Any]],
        read_at: float | None,
        quantities: Mapping[str, int],
    ) -> list[str]:
        found = {p["sku"] for p in products} & set(quantities)
        missing = sorted(set(quantities) - found)
        if missing:
            self.log(f"etsy listing {listing_id} has no SKUs {', '.join(missing)}; skipped them")
        if not found:
            return missing
        written = [
            {**p, "offerings": [{**p["offerings"][0], "quantity": quantities[p["sku"]]}]}
            if p["sku"] in found
            else p
            for p in products
        ]
        self._send_inventory(listing_id, written)
        self._inventories.remember({listing_id: written}, read_at)
        return missing

    # -- orders ---------------------------------------------------------------------------------

    def subscribe_order_events(self, uri: str, secret: str | None) -> list[str]:
        """Etsy has no API for webhooks: they are set up in the developer portal's Webhook
        Portal. Logs where to point them and adds nothing."""
        self.log(
            f"Etsy webhooks are configured in the developer portal, not by API: point the "
            f"order events at {uri} and give the hub the portal's signing secret"
        )
        return []

    def fetch_orders(self, since: datetime) -> list[RemoteOrder]:
        orders: list[RemoteOrder] = []
        offset = 0
        while True:
            body = self._call(
                "GET",
                f"/shops/{self.shop_id}/receipts",
                "getShopReceipts",
                params={
                    "min_last_modified": int(since.timestamp()),
                    "limit": PAGE,
                    "offset": offset,
                },
            ).json()
            orders.extend(order_from_receipt(r) for r in body["results"])
            offset += len(body["results"])
            if not body["results"] or offset >= body["count"]:
                return orders

    def ship_order(self, shipment: Shipment) -> ShipmentAnswer:
        """``createReceiptShipment``: the receipt's tracking (Etsy records tracking per
        receipt, not per line, and tells the buyer). A shipment of the receipt with the same
        tracking code already there (a retry after a lost answer) is answered as it is.
        Raises PermanentError with Etsy's error when it refuses."""
        path = f"/shops/{self.shop_id}/receipts/{shipment.order_external_id}"
        receipt = self._call("GET", path, "getShopReceipt").json()
        for made in receipt.get("shipments") or []:
            if made.get("tracking_code") == shipment.tracking_number:
                return ShipmentAnswer(_shipment_id(made), receipt, already=True)
        body = {"tracking_code": shipment.tracking_number, "carrier_name": shipment.carrier}
        receipt = self._call(
            "POST", f"{path}/tracking", "createReceiptShipment", json_body=body
        ).json()
        made = next(
            (m for m in receipt.get("shipments") or []
             if m.get("tracking_code") == shipment.tracking_number),
            {},
        )  # fmt: skip
        return ShipmentAnswer(_shipment_id(made), receipt)


def _shipment_id(shipment: Mapping[str, Any]) -> str | None:
    found = shipment.get("receipt_shipping_id")
    return str(found) if found is not None else None


class EtsyPlugin(Plugin):
    slug = "etsy"
    name = "Etsy"
    version = "1.0.0"
    auth_type = AuthType.OAUTH
    capabilities = {
        Capability.LIST_PRODUCTS: ContractLevel.NATIVE,
        Capability.CREATE_PRODUCT: ContractLevel.NATIVE,
        Capability.UPDATE_PRODUCT: ContractLevel.NATIVE,
        Capability.DELETE_PRODUCT: ContractLevel.NATIVE,
        Capability.BULK_OPERATIONS: ContractLevel.WORKAROUND,
        Capability.REAL_TIME_INVENTORY: ContractLevel.UNSUPPORTED,
        Capability.ORDER_WEBHOOKS: ContractLevel.NATIVE,
    }
    # Etsy's documented per-app default of 10 queries per second (headers correct it).
    rate_limit = RateLimitSpec(requests_per_second=10.0, burst_size=10)
    settings = SETTINGS

    def client(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> EtsyClient:
        return EtsyClient(conn, http, log)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent:
        """Standard Webhooks: one ``v1`` entry of ``webhook-signature`` must match the HMAC of
        ``id.timestamp.body`` (constant-time) and the timestamp must be within 5 minutes.
        Raises PermanentError naming what is wrong."""
        h = {k.lower(): v for k, v in headers.items()}
        msg_id = h.get("webhook-id")
        verify_standard_webhook(
            secret,
            msg_id=msg_id,
            timestamp=h.get("webhook-timestamp"),
            signature=h.get("webhook-signature"),
            body=body,
        )
        try:
            payload = json.loads(body)
        except ValueError:
            raise MalformedWebhook("webhook body is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("event_type"), str):
            raise MalformedWebhook("webhook body has no event_type")
        return WebhookEvent(delivery_id=str(msg_id), topic=payload["event_type"], payload=payload)

    def delivery_is_for(
        self, headers: Mapping[str, str], event: WebhookEvent, external_id: str
    ) -> bool:
        """The signed body's ``shop_id`` (every Etsy event carries it) is the store's numeric
        shop id; a receipt the event carries must be that shop's too, where it says."""
        shop = event.payload.get("shop_id")
        if not isinstance(shop, int | str) or isinstance(shop, bool) or not str(shop).strip():
            return False
        receipt = event.payload.get("receipt")
        receipt_shop = receipt.get("shop_id") if isinstance(receipt, Mapping) else None
        if receipt_shop is not None and str(receipt_shop).strip() != str(shop).strip():
            return False
        return str(shop).strip() == external_id.strip()

    def order_from_event(self, event: WebhookEvent) -> RemoteOrder | None:
        """The receipt an ``order.*`` event carries; None for other events, and for an event
        without the receipt (then the reconciliation pull brings the order in)."""
        if not event.topic.startswith("order.") or "receipt" not in event.payload:
            return None
        return order_from_receipt(event.payload["receipt"])


# -- helpers --------------------------------------------------------------------------------------


def _check_draft(draft: ProductDraft) -> None:
    if not draft.variants:
        raise PermanentError("an Etsy listing needs at least one variant")
    if any(v.price <= 0 for v in draft.variants):
        raise PermanentError("Etsy prices must be positive")
    check_image_types(draft)


def _taxonomy_id(draft: ProductDraft) -> int:
    """The listing's taxonomy node: the store's mapping of the product's category. Raises
    PermanentError naming ``taxonomy_id`` when the store maps none, or maps it to something
    that is not a node id."""
    mapped = draft.required_category("Etsy", "taxonomy_id")
    if not mapped.isdigit() or int(mapped) < 1:
        raise PermanentError(
            f"taxonomy_id: the store maps the product's category to {mapped!r}, "
            "not an Etsy taxonomy node id (a positive whole number)"
        )
    return int(mapped)


def _property_values(draft: ProductDraft) -> dict[str, list[dict[str, Any]]]:
    """Each variant's property values: its mapped attributes on the custom properties 513
    and 514 when every variant has the same mapped names (at most two) and no two variants
    the same values; else, for several variants, the SKU on 513; else none."""
    names = sorted(draft.variants[0].options)
    combos = {tuple(sorted(v.options.items())) for v in draft.variants}
    if (
        0 < len(names) <= 2
        and all(sorted(v.options) == names for v in draft.variants)
        and len(combos) == len(draft.variants)
    ):
        return {
            v.sku: [
                {
                    "property_id": VARIANT_PROPERTY + n,
                    "property_name": name,
                    "value_ids": [],
                    "values": [v.options[name]],
                }
                for n, name in enumerate(names)
            ]
            for v in draft.variants
        }
    several = len(draft.variants) > 1
    return {
        v.sku: (
            [{"property_id": VARIANT_PROPERTY, "value_ids": [], "values": [v.sku]}]
            if several
            else []
        )
        for v in draft.variants
    }


def _inventory_product(
    sku: str,
    price: Decimal,
    quantity: int,
    property_values: list[dict[str, Any]],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "sku": sku,
        "property_values": property_values,
        "offerings": [
            {
                "price": float(price),
                "quantity": quantity,
                "is_enabled": True,
                "readiness_state_id": READINESS_STATE_ID.value(settings),
            }
        ],
    }


def _with_images(remote: RemoteProduct, images: Mapping[str, Any]) -> RemoteProduct:
    return replace(remote, raw={**remote.raw, **images}) if images else remote


def _remote_product(listing: Mapping[str, Any]) -> RemoteProduct:
    products = (listing.get("inventory") or {}).get("products") or []
    return RemoteProduct(
        external_id=str(listing["listing_id"]),
        title=str(listing.get("title") or ""),
        quantities={
            str(p["sku"]): int(p["offerings"][0]["quantity"])
            for p in products
            if p.get("sku") and p.get("offerings")
        },
        url=listing.get("url"),
        raw={"state": listing.get("state"), "tags": listing.get("tags") or []},
        variants=[
            RemoteVariant(
                sku=str(p.get("sku") or ""),
                quantity=int(p["offerings"][0]["quantity"]),
                price=money(p["offerings"][0]["price"]),
            )
            for p in products
            if p.get("offerings")
        ],
    )


def order_from_receipt(receipt: Mapping[str, Any]) -> RemoteOrder:
    """A RemoteOrder from an Etsy ShopReceipt; raises PermanentError when it is malformed."""
    try:
        total = receipt["grandtotal"]
        return RemoteOrder(
            external_id=str(receipt["receipt_id"]),
            lines=[
                OrderLine(
                    sku=str(t.get("sku") or ""),
                    quantity=int(t["quantity"]),
                    unit_price=money(t["price"]),
                    external_line_id=str(t["transaction_id"]),
                )
                for t in receipt.get("transactions") or []
            ],
            total=money(total),
            currency=str(total.get("currency_code") or "USD"),
            status=str(receipt.get("status") or "unknown"),
            placed_at=datetime.fromtimestamp(int(receipt["create_timestamp"]), UTC),
            updated_at=_updated(receipt),
            raw=dict(receipt),
            cancelled=str(receipt.get("status") or "").lower() == "canceled",
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PermanentError(f"malformed etsy receipt: {type(exc).__name__}") from None


def _updated(receipt: Mapping[str, Any]) -> datetime | None:
    # Etsy spells it both ways across versions (update_timestamp, updated_timestamp).
    stamp = receipt.get("updated_timestamp") or receipt.get("update_timestamp")
    return datetime.fromtimestamp(int(stamp), UTC) if stamp else None


plugin = EtsyPlugin()
