"""Printify through its v1 REST API (``Authorization: Bearer``, a ``User-Agent`` on every call).

Printify is print-on-demand: a product is a blueprint made by a print provider, with the
provider's variant ids and print areas holding uploaded artwork. So:

- create (workaround): a hub product cannot be posted as it is. The plugin builds one from a
  design template (``draft.attributes["printify"]``, else ``settings["printify_template"]``,
  else the shop's product tagged ``fusion:template``: ``blueprint_id``, ``print_provider_id``,
  ``variant_ids`` in the order of the hub's variants, ``print_areas``), then publishes it and
  confirms ``publishing_succeeded`` with the hub's listing as the external product (the hub
  is this shop's custom sales channel). Idempotent:
  the product is tagged ``fusion:<idempotency key>`` and a retry finds it by that tag first.
- update (workaround): Printify refuses edits while a product is locked in publishing, and a
  change only reaches the channel when published again; so update = PUT, then publish +
  ``publishing_succeeded``.
- real-time inventory (native): a PUT of the variants' ``quantity`` and ``is_enabled``
  (quantity 0 disables the variant). Printify's product resource shows a variant ``quantity``;
  that its update accepts one is unconfirmed, while ``is_enabled`` is documented, so a variant
  out of stock stops selling either way. ``list_products`` reports 0 for disabled variants.
- images: uploaded to the account's media library and placed in the design's print areas
  (``fusion/plugins/_printify_images.py``).
- delete and bulk operations are unsupported (the capability matrix): they raise.
- order webhooks: ``X-Pfy-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

Store fields: ``external_id`` = the Printify shop id; ``credentials["token"]`` (or
``access_token``); ``settings``: ``printify_template``, ``storefront_url`` (the handle given
to ``publishing_succeeded``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from fusion.errors import MalformedWebhook, PermanentError, RetryableError, UnsupportedCapability
from fusion.plugins._printify_images import Artwork, artwork_raw
from fusion.plugins.base import (
    AuthType,
    Capability,
    HttpClient,
    HttpResponse,
    InventoryUpdate,
    OrderLine,
    PlatformClient,
    Plugin,
    ProductDraft,
    RemoteOrder,
    RemoteProduct,
    RemoteShipment,
    RemoteVariant,
    SettingSpec,
    SettingType,
    StoreConnection,
    WebhookEvent,
)
from fusion.plugins.http import HTTP_SETTINGS
from fusion.plugins.models import ContractLevel
from fusion.ratelimit.spec import ApiCall, RateLimitSpec

TAG_PREFIX = "fusion:"
TEMPLATE_TAG = "fusion:template"
PAGE_SIZE = 50  # documented maxima disagree (50 vs 100): stay within both
PUBLISH_ALL = {
    "title": True,
    "description": True,
    "images": True,
    "variants": True,
    "tags": True,
    "keyFeatures": True,
    "shipping_template": True,
}
# Printify signs no timestamp; the body's created_at is covered by the signature, so a
# delivery older than this is refused as stale (replays inside it are caught by the id dedupe).
MAX_EVENT_AGE = timedelta(hours=1)
# A shipment event names its order like the others; the order read back carries its shipments.
ORDER_TOPICS = {"order:created", "order:updated", "order:shipment:created"}
CANCELLED = {"canceled", "cancelled"}  # Printify's docs spell it both ways

STOREFRONT_URL = SettingSpec(
    "storefront_url",
    SettingType.URL,
    "Where the store's products are sold: Printify is told each published product lives at "
    "this URL plus its id (publishing_succeeded).",
    default="https://fusion.invalid/listings",
)
PRINTIFY_TEMPLATE = SettingSpec(
    "printify_template",
    SettingType.OBJECT,
    "The design of new products when a product names none: blueprint_id, print_provider_id, "
    "variant_ids and print_areas. Unset: the shop's product tagged fusion:template.",
)
SETTINGS = (STOREFRONT_URL, PRINTIFY_TEMPLATE, *HTTP_SETTINGS)


class PrintifyClient(Artwork, PlatformClient):
    """One Printify shop's client for one job."""

    def __init__(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(conn, http, log)
        self.shop = f"/v1/shops/{int(conn.external_id)}"

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        expect: Sequence[int] = (),
    ) -> HttpResponse:
        token = self.conn.credentials.get("token") or self.conn.credentials.get("access_token")
        if not token:
            raise PermanentError("printify store has no API token")
        return self.http.request(
            method,
            path,
            call=ApiCall(operation),
            headers={"Authorization": f"Bearer {str.__str__(token)}", "Accept": "application/json"},
            json=json_body,
            params=params,
            expect=expect,
        )

    # -- products -------------------------------------------------------------------------------

    def _products(self) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            params = {"page": page, "limit": PAGE_SIZE}
            body = self._call(
                "GET", f"{self.shop}/products.json", "products:list", params=params
            ).json()
            yield from body.get("data", [])
            if page >= int(body.get("last_page", 1)):
                return
            page += 1

    def list_products(self) -> list[RemoteProduct]:
        """Every product of the shop except the design template (it is not for sale)."""
        return [_remote(p) for p in self._products() if TEMPLATE_TAG not in p.get("tags", [])]

    def create_product(self, draft: ProductDraft) -> RemoteProduct:
        tag = TAG_PREFIX + (draft.idempotency_key or "")
        shop_products = list(self._products())
        existing = (
            next((p for p in shop_products if tag in p.get("tags", [])), None)
            if draft.idempotency_key
            else None
        )
        artwork: dict[str, str] = {}
        if existing is not None:
            self.log(
                f"found product {existing['id']} made by an earlier attempt (tag {tag}); "
                "not creating another"
            )
            product = existing
        else:
            template = self._template(draft, shop_products)
            ids = list(template["variant_ids"])
            if len(ids) < len(draft.variants):
                raise PermanentError(
                    f"the Printify template has {len(ids)} variant ids "
                    f"for {len(draft.variants)} variants"
                )
            artwork = self._uploads(draft)
            body = {
                "title": draft.title,
                "description": draft.description,
                "tags": [tag] if draft.idempotency_key else [],
                "blueprint_id": int(template["blueprint_id"]),
                "print_provider_id": int(template["print_provider_id"]),
                "print_areas": self._placed(draft, template["print_areas"], artwork),
                "variants": [
                    {
                        "id": int(vid),
                        "sku": v.sku,
                        "price": _cents(v.price),
                        "is_enabled": v.quantity > 0,
                        "quantity": max(0, v.quantity),
                    }
                    for vid, v in zip(ids, draft.variants, strict=False)
                ],
            }
            product = self._call(
                "POST", f"{self.shop}/products.json", "products:create", json_body=body
            ).json()
            self.log(
                f"workaround: Printify takes no catalog product as is; built product "
                f"{product['id']} from blueprint {body['blueprint_id']} / provider "
                f"{body['print_provider_id']} with the store's design template"
            )
        if not product.get("external"):
            self._publish(product["id"], draft)
        # A product an earlier attempt made keeps its artwork; the next update places it anew.
        return _with_artwork(_remote(self._get(product["id"])), artwork_raw(draft, artwork))

    def update_product(self, external_id: str, draft: ProductDraft) -> RemoteProduct:
        product = self._get(external_id)
        if product.get("is_locked"):
            raise RetryableError(f"Printify product {external_id} is locked while publishing")
        by_sku = {v.sku: v for v in draft.variants}
        variants = [
            {
                "id": v["id"],
                "price": _cents(by_sku[v["sku"]].price),
                "is_enabled": by_sku[v["sku"]].quantity > 0,
                "quantity": max(0, by_sku[v["sku"]].quantity),
            }
            for v in product["variants"]
            if v.get("sku") in by_sku
        ]
        body: dict[str, Any] = {"title": draft.title, "description": draft.description}
        if variants:
            body["variants"] = variants
        artwork = self._uploads(draft) if draft.images or draft.sent_images else {}
        if artwork or draft.sent_images:
            areas = self._placed(draft, product["print_areas"], artwork)
            if areas != product["print_areas"]:
                body["print_areas"] = areas
        self._call(
            "PUT", f"{self.shop}/products/{external_id}.json", "products:update", json_body=body
        )
        self._publish(external_id, draft)
        self.log(
            f"workaround: Printify pushes a change to the sales channel only on publish; updated "
            f"product {external_id}, then published it again and confirmed publishing_succeeded"
        )
        return _with_artwork(_remote(self._get(external_id)), artwork_raw(draft, artwork))

    def delete_product(self, external_id: str) -> None:
        raise UnsupportedCapability("printify", Capability.DELETE_PRODUCT.value)

    def bulk_set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        raise UnsupportedCapability("printify", Capability.BULK_OPERATIONS.value)

    # -- inventory ------------------------------------------------------------------------------

    def set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        wanted = {u.sku: u.quantity for u in updates}
        known = {u.external_id for u in updates if u.external_id}
        products = (
            [self._get(pid) for pid in known]
            if known and len(known) == len(updates)
            else list(self._products())
        )
        touched: set[str] = set()
        for product in products:
            changes = [
                {
                    "id": v["id"],
                    "quantity": max(0, wanted[v["sku"]]),
                    "is_enabled": wanted[v["sku"]] > 0,
                }
                for v in product["variants"]
                if v.get("sku") in wanted
            ]
            if not changes:
                continue
            if product.get("is_locked"):
                raise RetryableError(f"Printify product {product['id']} is locked while publishing")
            path = f"{self.shop}/products/{product['id']}.json"
            self._call("PUT", path, "products:update", json_body={"variants": changes})
            touched.update(v["sku"] for v in product["variants"] if v.get("sku") in wanted)
        missing = sorted(set(wanted) - touched)
        if missing:
            raise PermanentError(f"no Printify variant has SKU {missing}")

    # -- orders ---------------------------------------------------------------------------------

    def fetch_orders(self, since: datetime) -> list[RemoteOrder]:
        orders, page = [], 1
        while True:
            params = {"page": page, "limit": PAGE_SIZE}
            body = self._call(
                "GET", f"{self.shop}/orders.json", "orders:list", params=params
            ).json()
            for order in body.get("data", []):
                changed = _when(order.get("updated_at") or order.get("created_at"))
                if changed is not None and changed >= since:
                    orders.append(order_from_api(order))
            if page >= int(body.get("last_page", 1)):
                return orders
            page += 1

    def fetch_order(self, order_id: str) -> RemoteOrder:
        """One order by id (what an ``order:*`` webhook names)."""
        return order_from_api(self._order(order_id))

    def subscribe_order_events(self, uri: str, secret: str | None) -> list[str]:
        """Register ``uri`` for the ``order:*`` topics it is not registered for yet (signed
        with ``secret``); returns the topics added."""
        hooks = self._call("GET", f"{self.shop}/webhooks.json", "webhooks:list").json()
        present = {h.get("topic") for h in hooks if h.get("url") == uri}
        added = []
        for topic in sorted(ORDER_TOPICS - present):
            body = {"topic": topic, "url": uri, **({"secret": secret} if secret else {})}
            self._call("POST", f"{self.shop}/webhooks.json", "webhooks:create", json_body=body)
            added.append(topic)
        return added

    def complete_event(self, event: WebhookEvent) -> WebhookEvent:
        """An ``order:*`` event with the order read back under ``resource.data`` (Printify's
        events carry only its status); other events come back unchanged."""
        order_id = order_id_from_event(event)
        if order_id is None or not plugin.needs_lookup(event):
            return event
        resource = dict(event.payload.get("resource", {}))
        data = {**resource.get("data", {}), **self._order(order_id)}
        payload = {**event.payload, "resource": {**resource, "data": data}}
        return WebhookEvent(event.delivery_id, event.topic, payload)

    def _order(self, order_id: str) -> dict[str, Any]:
        path = f"{self.shop}/orders/{quote(order_id, safe='')}.json"
        order: dict[str, Any] = self._call("GET", path, "orders:get").json()
        return order

    # -- helpers --------------------------------------------------------------------------------

    def _get(self, product_id: str) -> dict[str, Any]:
        response = self._call(
            "GET", f"{self.shop}/products/{product_id}.json", "products:get", expect=(404,)
        )
        if response.status == 404:
            raise PermanentError(f"Printify product {product_id} does not exist")
        product: dict[str, Any] = response.json()
        return product

    def _publish(self, product_id: str, draft: ProductDraft) -> None:
        base = f"{self.shop}/products/{product_id}"
        self._call("POST", f"{base}/publish.json", "products:publish", json_body=PUBLISH_ALL)
        external_id = draft.idempotency_key or product_id
        storefront = str(STOREFRONT_URL.value(self.conn.settings))
        external = {"id": external_id, "handle": f"{storefront.rstrip('/')}/{external_id}"}
        self._call(
            "POST",
            f"{base}/publishing_succeeded.json",
            "products:publishing_succeeded",
            json_body={"external": external},
        )
        self.log(f"published Printify product {product_id} and confirmed publishing_succeeded")

    def _template(
        self, draft: ProductDraft, shop_products: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Where a new product's blueprint, provider, variant ids and print areas come from:
        the draft's ``printify`` attribute, the store's ``printify_template`` setting, or the
        shop's design tagged ``fusion:template`` (made once in Printify's editor)."""
        template = draft.attributes.get("printify") or PRINTIFY_TEMPLATE.value(self.conn.settings)
        if template is None:
            design = next((p for p in shop_products if TEMPLATE_TAG in p.get("tags", [])), None)
            if design is not None:
                template = {
                    "blueprint_id": design["blueprint_id"],
                    "print_provider_id": design["print_provider_id"],
                    "variant_ids": [v["id"] for v in design["variants"]],
                    "print_areas": design["print_areas"],
                }
        needed = ("blueprint_id", "print_provider_id", "variant_ids", "print_areas")
        if not isinstance(template, Mapping) or any(k not in template for k in needed):
            raise PermanentError(
                "Printify needs a design template: a product tagged fusion:template in the shop, "
                "or blueprint_id, print_provider_id, variant_ids and print_areas in the store's "
                "printify_template setting"
            )
        return template


def _with_artwork(remote: RemoteProduct, artwork: Mapping[str, Any]) -> RemoteProduct:
    return replace(remote, raw={**remote.raw, **artwork}) if artwork else remote


def _cents(price: Decimal) -> int:
    return int((price * 100).quantize(Decimal(1)))


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace(" ", "T").replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _remote(product: Mapping[str, Any]) -> RemoteProduct:
    external = product.get("external") or {}
    return RemoteProduct(
        external_id=str(product["id"]),
        title=str(product.get("title", "")),
        quantities={str(v["sku"]): _quantity(v) for v in product.get("variants", [])},
        url=external.get("handle"),
        raw=dict(product),
        variants=[
            RemoteVariant(
                sku=str(v.get("sku") or ""),
                quantity=_quantity(v),
                price=Decimal(int(v["price"])) / 100 if v.get("price") is not None else None,
                title=str(v.get("title") or ""),
            )
            for v in product.get("variants", [])
        ],
    )


def _quantity(variant: Mapping[str, Any]) -> int:
    """A variant's sellable quantity: 0 when disabled or unavailable, else its ``quantity``."""
    if not variant.get("is_enabled", True) or not variant.get("is_available", True):
        return 0
    return max(0, int(variant.get("quantity", 0)))


def order_from_api(order: Mapping[str, Any]) -> RemoteOrder:
    """A hub order from a Printify order (prices are integer cents)."""
    lines = [
        OrderLine(
            sku=str(item.get("metadata", {}).get("sku", "")),
            quantity=int(item.get("quantity", 0)),
            unit_price=Decimal(int(item.get("metadata", {}).get("price", 0))) / 100,
            external_line_id=f"{item.get('product_id')}:{item.get('variant_id')}",
        )
        for item in order.get("line_items", [])
    ]
    return RemoteOrder(
        external_id=str(order["id"]),
        lines=lines,
        total=Decimal(int(order.get("total_price", 0))) / 100,
        currency="USD",
        status=str(order.get("status", "")),
        placed_at=_when(order.get("created_at")),
        updated_at=_when(order.get("updated_at")),
        raw=dict(order),
        cancelled=str(order.get("status", "")).lower() in CANCELLED,
        shipments=[
            RemoteShipment(
                external_id=f"{shipment.get('carrier', '')}:{shipment['number']}",
                carrier=str(shipment.get("carrier") or ""),
                tracking_number=str(shipment["number"]),
                tracking_url=str(shipment["url"]) if shipment.get("url") else None,
                raw=dict(shipment),
            )
            for shipment in order.get("shipments") or []
            if shipment.get("number")
        ],
    )


class PrintifyPlugin(Plugin):
    slug = "printify"
    name = "Printify"
    version = "1.0.0"
    auth_type = AuthType.API_KEY
    capabilities = {
        Capability.LIST_PRODUCTS: ContractLevel.NATIVE,
        Capability.CREATE_PRODUCT: ContractLevel.WORKAROUND,
        Capability.UPDATE_PRODUCT: ContractLevel.WORKAROUND,
        Capability.DELETE_PRODUCT: ContractLevel.UNSUPPORTED,
        Capability.BULK_OPERATIONS: ContractLevel.UNSUPPORTED,
        Capability.REAL_TIME_INVENTORY: ContractLevel.NATIVE,
        Capability.ORDER_WEBHOOKS: ContractLevel.NATIVE,
    }
    # 600 requests a minute per account: a bucket of 600 refilled at 10 a second.
    rate_limit = RateLimitSpec(requests_per_second=10.0, burst_size=600)
    settings = SETTINGS
    ships_own_orders = True  # Printify prints and ships; its shipments are read back

    def client(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> PrintifyClient:
        return PrintifyClient(conn, http, log)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent:
        """Check ``X-Pfy-Signature`` (``sha256=`` + hex HMAC-SHA256 of the raw body, compared in
        constant time) and that the signed ``created_at`` is under an hour old. Raises
        PermanentError naming what is wrong: no secret, no or malformed signature, mismatch,
        stale, or a body that is not a Printify event."""
        if not secret:
            raise PermanentError("no webhook secret is configured for this store")
        lowered = {k.lower(): v for k, v in headers.items()}
        signature = lowered.get("x-pfy-signature", "")
        if not signature.startswith("sha256="):
            raise PermanentError("missing or malformed X-Pfy-Signature header")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature[7:].strip().lower().encode(), expected.encode()):
            raise PermanentError("X-Pfy-Signature does not match the body")
        try:
            event = json.loads(body)
            delivery_id, topic = str(event["id"]), str(event["type"])
            created = _when(event["created_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedWebhook(f"not a Printify event: {type(exc).__name__}") from None
        if created is None or datetime.now(UTC) - created > MAX_EVENT_AGE:
            raise PermanentError("stale Printify event (created over an hour ago)")
        return WebhookEvent(delivery_id=delivery_id, topic=topic, payload=event)

    def delivery_is_for(
        self, headers: Mapping[str, str], event: WebhookEvent, external_id: str
    ) -> bool:
        """The signed body's ``resource.data.shop_id`` (``resource.id`` for a ``shop``
        resource, as in ``shop:disconnected``) is the store's Printify shop id."""
        return shop_of_event(event) == external_id.strip()

    def needs_lookup(self, event: WebhookEvent) -> bool:
        """An ``order:*`` event without its line items, as Printify sends them."""
        data = event.payload.get("resource", {}).get("data", {})
        return order_id_from_event(event) is not None and "line_items" not in data

    def order_from_event(self, event: WebhookEvent) -> RemoteOrder | None:
        """The order of an ``order:*`` event when it carries its line items; Printify's own
        events carry only ``shop_id`` and ``status``, so this is then None until
        :meth:`PrintifyClient.complete_event` has read the order back."""
        if event.topic not in ORDER_TOPICS:
            return None
        resource = event.payload.get("resource", {})
        data = resource.get("data", {})
        if "line_items" in data:
            return order_from_api({"id": resource.get("id"), **data})
        return None


def shop_of_event(event: WebhookEvent) -> str | None:
    """The Printify shop an event names, or None when it names none."""
    resource = event.payload.get("resource")
    if not isinstance(resource, Mapping):
        return None
    data = resource.get("data")
    shop = data.get("shop_id") if isinstance(data, Mapping) else None
    if shop is None and resource.get("type") == "shop":
        shop = resource.get("id")
    return str(shop).strip() if isinstance(shop, int | str) and str(shop).strip() else None


def order_id_from_event(event: WebhookEvent) -> str | None:
    """The Printify order an ``order:*`` event is about, for :meth:`PrintifyClient.fetch_order`."""
    if event.topic not in ORDER_TOPICS:
        return None
    resource_id = event.payload.get("resource", {}).get("id")
    return str(resource_id) if resource_id else None


plugin = PrintifyPlugin()
