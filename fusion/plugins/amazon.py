"""Amazon Seller Central through the Selling Partner API.

- Listings Items 2021-08-01 (``x-amz-access-token`` from Login with Amazon): put, patch, get,
  delete, search. An Amazon listing is keyed by (seller, SKU), so a hub product becomes one
  listing per variant SKU and its ``external_id`` is those SKUs joined by ``|``.
- Create is idempotent by the platform's own key: ``putListingsItem`` on a SKU is an upsert, so
  a create retried after a timeout replaces the same listing and never makes a second one.
- Inventory (workaround): SP-API has no stock endpoint for merchant-fulfilled items; quantities
  go out as ``fulfillment_availability`` patches on each listing (the job log says so).
- Bulk: the Feeds API, ``JSON_LISTINGS_FEED`` (document, upload, createFeed, poll, report).
- Orders: ``ORDER_CHANGE`` notifications arrive only through SQS (``fusion/plugins/
  amazon_sqs.py``), read by the ``consume_order_queue`` job; processing one adds its order
  from the Orders API (prices live only there); ``fetch_orders`` reconciles through Orders
  v0 ``getOrders`` with ``LastUpdatedAfter``.

Store fields: ``external_id`` = seller id; ``credentials`` = client_id, client_secret,
refresh_token (plus aws_access_key_id / aws_secret_access_key for the queue); ``settings`` =
marketplace_id, product_type (of stock patches), lwa_url, sqs_queue_url, sqs_endpoint_url,
aws_region, feed_poll_interval_s, feed_poll_attempts. A listing's ``productType`` is the
store's mapping of its product's category (``draft.category``); Amazon requires one, so a
product the store maps to none fails its listing naming ``productType``. Mapped variant
attributes (``VariantDraft.options``) are sent as Amazon attributes under the mapped names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from fusion.errors import PermanentError
from fusion.plugins import _amazon_lwa as lwa
from fusion.plugins._amazon_feeds import FEED_SETTINGS, ListingsFeed
from fusion.plugins._amazon_images import image_attributes, image_patches, images_raw
from fusion.plugins.amazon_sqs import (
    LONG_POLL_S,
    SQS_QUEUE_URL,
    SQS_SETTINGS,
    OrderChangeConsumer,
)
from fusion.plugins.base import (
    AuthType,
    Capability,
    HttpClient,
    HttpResponse,
    InventoryUpdate,
    ItemRefusal,
    OrderLine,
    OrderQueue,
    PlatformClient,
    Plugin,
    ProductDraft,
    ProductPage,
    PushRefused,
    RemoteOrder,
    RemoteProduct,
    SettingSpec,
    SettingType,
    Shipment,
    ShipmentAnswer,
    StoreConnection,
    VariantDraft,
    WebhookEvent,
)
from fusion.plugins.http import HTTP_SETTINGS
from fusion.plugins.models import ContractLevel
from fusion.ratelimit.spec import ApiCall, OperationLimit, RateLimitSpec

DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"
LISTINGS = "/listings/2021-08-01/items"
FEEDS = "/feeds/2021-06-30"
CHANNEL = "DEFAULT"  # merchant-fulfilled; FBA quantities belong to Amazon
SKU_SEPARATOR = "|"
CANCELED = "Canceled"  # Orders API OrderStatus
# The SP-API usage plans of the Orders and Feeds operations the plugin calls (rps, burst):
# each is limited on its own, far below the Listings Items allowance (docs/plugins.md).
OPERATION_LIMITS = {
    "getOrders": OperationLimit(0.0167, 20),
    "getOrder": OperationLimit(0.5, 30),
    "getOrderItems": OperationLimit(0.5, 30),
    "confirmShipment": OperationLimit(2.0, 10),
    "createFeedDocument": OperationLimit(0.5, 15),
    "createFeed": OperationLimit(0.0083, 15),
    "getFeed": OperationLimit(2.0, 15),
    "getFeedDocument": OperationLimit(0.0222, 10),
}
# Feed documents go to and come from S3 through pre-signed URLs, and the token comes from
# Login with Amazon: none of them spends SP-API quota.
UNMETERED = frozenset({"feeds:upload", "feeds:download", "lwa:token"})


def _cost(call: ApiCall) -> float:
    return 0.0 if call.operation in UNMETERED else 1.0


# Per selling-partner account, each Listings Items operation allows 5 rps with a burst of 5.
LISTINGS_RATE = RateLimitSpec(
    requests_per_second=5.0, burst_size=5, cost=_cost, operations=OPERATION_LIMITS
)

MARKETPLACE_ID = SettingSpec(
    "marketplace_id",
    SettingType.STRING,
    "The Amazon marketplace the store sells in (ATVPDKIKX0DER is amazon.com); listings, "
    "orders and feeds are read and written there.",
    default=DEFAULT_MARKETPLACE,
)
PRODUCT_TYPE = SettingSpec(
    "product_type",
    SettingType.STRING,
    "The Amazon product type that stock patches and feed messages name (Amazon takes PRODUCT "
    "for offer-only changes). A listing's own product type is the store's mapping of its "
    "product's category (catalog_rules.categories).",
    default="PRODUCT",
)
# Measured in the sandbox (bench/amazon_feed_threshold.py, docs/plugins.md): below this many
# SKUs, patches (5 a second) show the figures sooner than a feed does.
FEED_MIN_SKUS = SettingSpec(
    "inventory_feed_min_skus",
    SettingType.INTEGER,
    "A real-time stock push of at least this many SKUs goes out as one JSON_LISTINGS_FEED "
    "(while the Feeds API has quota) instead of one listing patch per SKU. Amazon takes a "
    "feed in minutes, not seconds: raise it where the figures must show at once.",
    default=4,
    minimum=2,
    maximum=10_000,
)
FEED_OPERATIONS = ("createFeedDocument", "createFeed", "getFeed", "getFeedDocument")
SETTINGS = (
    MARKETPLACE_ID,
    PRODUCT_TYPE,
    FEED_MIN_SKUS,
    *SQS_SETTINGS,
    lwa.LWA_URL_SETTING,
    *FEED_SETTINGS,
    *HTTP_SETTINGS,
)


class AmazonClient(ListingsFeed, PlatformClient):
    """One seller's SP-API client for one job."""

    def __init__(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(conn, http, log)
        self.seller_id = conn.external_id
        self.marketplace_id = str(MARKETPLACE_ID.value(conn.settings))

    # -- transport ------------------------------------------------------------------------------

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
        """One SP-API call with a valid access token; a token Amazon calls expired or revoked
        is dropped and the call made once more with a fresh one."""
        for attempt in (1, 2):
            token = lwa.access_token(self.conn, self.http)
            response = self.http.request(
                method,
                path,
                call=ApiCall(operation),
                headers={"x-amz-access-token": token, "Accept": "application/json"},
                json=json_body,
                params=params,
                expect=(*expect, 403),
            )
            if response.status != 403:
                break
            lwa.forget(self.conn)
            if attempt == 2 or "access token" not in _error_text(response):
                raise PermanentError(
                    f"amazon_sc {operation} refused the seller's authorisation (403): "
                    f"{_error_text(response)}"
                )
        return response

    def _item_path(self, sku: str) -> str:
        return f"{LISTINGS}/{quote(self.seller_id, safe='')}/{quote(sku, safe='')}"

    def _mp(self, **extra: Any) -> dict[str, Any]:
        return {"marketplaceIds": self.marketplace_id, **extra}

    # -- products -------------------------------------------------------------------------------

    def list_products(self) -> list[RemoteProduct]:
        products: list[RemoteProduct] = []
        token = None
        while True:
            page = self.list_products_page(token)
            products.extend(page.products)
            token = page.next_cursor
            if not token:
                return products

    def list_products_page(self, cursor: str | None) -> ProductPage:
        """One page of ``searchListingsItems`` from the ``pageToken`` ``cursor``."""
        params = self._mp(includedData="summaries,fulfillmentAvailability", pageSize=20)
        if cursor:
            params["pageToken"] = cursor
        path = f"{LISTINGS}/{quote(self.seller_id, safe='')}"
        body = self._call("GET", path, "searchListingsItems", params=params).json()
        token = (body.get("pagination") or {}).get("nextToken")
        return ProductPage([_remote(item) for item in body.get("items", [])], token or None)

    def create_product(self, draft: ProductDraft) -> RemoteProduct:
        if not draft.variants:
            raise PermanentError("an Amazon listing needs at least one SKU")
        quantities = {}
        product_type = self._product_type(draft)
        for variant in draft.variants:
            body = {
                "productType": product_type,
                "requirements": "LISTING",
                "attributes": {
                    **self._attributes(draft, variant),
                    **image_attributes(draft, self.marketplace_id),
                },
            }
            response = self._call(
                "PUT",
                self._item_path(variant.sku),
                "putListingsItem",
                json_body=body,
                params=self._mp(),
            )
            _accepted(response, variant.sku)
            quantities[variant.sku] = variant.quantity
        skus = [v.sku for v in draft.variants]
        return RemoteProduct(
            SKU_SEPARATOR.join(skus), draft.title, quantities, raw=images_raw(draft)
        )

    def update_product(self, external_id: str, draft: ProductDraft) -> RemoteProduct:
        by_sku = {v.sku: v for v in draft.variants}
        quantities = {}
        for sku in _skus(external_id):
            variant = by_sku.get(sku)
            if variant is None:
                continue
            attributes = self._attributes(draft, variant)
            patches = [
                {"op": "replace", "path": f"/attributes/{name}", "value": value}
                for name, value in attributes.items()
            ]
            self._patch(sku, patches + image_patches(draft, self.marketplace_id), draft)
            quantities[sku] = variant.quantity
        return RemoteProduct(external_id, draft.title, quantities, raw=images_raw(draft))

    def delete_product(self, external_id: str) -> None:
        for sku in _skus(external_id):
            response = self._call(
                "DELETE",
                self._item_path(sku),
                "deleteListingsItem",
                params=self._mp(),
                expect=(404,),
            )
            if response.status == 404:
                self.log(f"listing {sku} was already gone from Amazon; nothing to delete")

    # -- inventory ------------------------------------------------------------------------------

    def set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        """Real-time quantities: one JSON_LISTINGS_FEED for a push of at least
        ``inventory_feed_min_skus`` SKUs while the feed operations have quota (one feed
        instead of a patch per SKU, and none of the Listings Items allowance), else one
        ``patchListingsItem`` per SKU. Raises PushRefused naming each SKU Amazon refused (the
        others were set)."""
        threshold = int(FEED_MIN_SKUS.value(self.conn.settings))
        if len(updates) >= threshold and self.http.has_quota(FEED_OPERATIONS):
            refusals = self._inventory_feed(updates)
            _raise_refused(updates, {r.sku: r.reason for r in refusals})
            return
        refused: dict[str, str] = {}
        for update in updates:
            try:
                self._patch(update.sku, [_quantity_patch(update.quantity)], None)
            except PermanentError as exc:
                refused[update.sku] = str(exc)
                continue
            self.log(
                f"workaround: Amazon has no stock endpoint for merchant-fulfilled items; set "
                f"{update.sku} to {update.quantity} by patching its listing's "
                "fulfillment_availability"
            )
        _raise_refused(updates, refused)

    def bulk_set_inventory(self, updates: Sequence[InventoryUpdate]) -> list[ItemRefusal]:
        """One JSON_LISTINGS_FEED of every quantity; the SKUs Amazon refused, each with its
        reasons (the others were set)."""
        return self._inventory_feed(updates) if updates else []

    def _inventory_feed(self, updates: Sequence[InventoryUpdate]) -> list[ItemRefusal]:
        messages = [
            {
                "messageId": n,
                "sku": update.sku,
                "operationType": "PATCH",
                "productType": self._product_type(None),
                "patches": [_quantity_patch(update.quantity)],
            }
            for n, update in enumerate(updates, 1)
        ]
        return self._submit_listings_feed(messages)

    # -- orders ---------------------------------------------------------------------------------

    def subscribe_order_events(self, uri: str, secret: str | None) -> list[str]:
        """Amazon sends order events only to SQS, never to an HTTP address: the store's
        ``sqs_queue_url`` is polled instead. Logs so and adds nothing."""
        queue = SQS_QUEUE_URL.value(self.conn.settings)
        self.log(
            "Amazon delivers ORDER_CHANGE only to SQS; "
            + (f"the hub polls {queue}" if queue else "set the store's sqs_queue_url")
        )
        return []

    def fetch_orders(self, since: datetime) -> list[RemoteOrder]:
        orders: list[RemoteOrder] = []
        token = None
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        while True:
            params: dict[str, Any] = {"MarketplaceIds": self.marketplace_id}
            if token:
                params["NextToken"] = token
            else:
                params["LastUpdatedAfter"] = stamp
            payload = self._call("GET", "/orders/v0/orders", "getOrders", params=params).json()
            payload = payload.get("payload", {})
            for order in payload.get("Orders", []):
                orders.append(self.get_order(order))
            token = payload.get("NextToken")
            if not token:
                return orders

    def get_order(self, order: Mapping[str, Any]) -> RemoteOrder:
        """The order with its items (prices live only in ``getOrderItems``)."""
        return order_from_api(order, self._order_items(str(order["AmazonOrderId"])))

    def complete_event(self, event: WebhookEvent) -> WebhookEvent:
        """An ORDER_CHANGE event with the Orders API order and its items added under
        ``order`` / ``items`` (the notification itself carries no prices). Other events, and
        an order Amazon refuses to show (logged), come back unchanged: the notification's own
        lines still count the stock. Rate limits and outages propagate."""
        if not plugin.needs_lookup(event):
            return event
        order_id = _notified_order_id(event)
        path = f"/orders/v0/orders/{quote(str(order_id), safe='')}"
        try:
            order = self._call("GET", path, "getOrder").json()["payload"]
            items = self._order_items(str(order_id))
        except PermanentError as exc:
            self.log(f"order {order_id}: the Orders API refused it ({exc}); kept without prices")
            return event
        return WebhookEvent(
            event.delivery_id, event.topic, {**event.payload, "order": order, "items": items}
        )

    def ship_order(self, shipment: Shipment) -> ShipmentAnswer:
        """``confirmShipment`` of the shipment's order items, as one package referenced by the
        hub's fulfilment id, in the store's marketplace. When Amazon already counts every item
        shipped past what the hub's earlier shipments took (a retry after a lost answer), the
        shipment is there and nothing is sent. Raises PermanentError with Amazon's errors when
        it refuses."""
        order_id = shipment.order_external_id
        shipped = {
            str(item["OrderItemId"]): int(item.get("QuantityShipped") or 0)
            for item in self._order_items(order_id)
        }
        if all(
            shipped.get(line.external_line_id, 0) >= line.shipped_before + line.quantity
            for line in shipment.lines
        ):
            return ShipmentAnswer(shipment.reference, {"orderItems": shipped}, already=True)
        package = {
            "packageReferenceId": shipment.reference,
            "carrierCode": shipment.carrier,
            "carrierName": shipment.carrier,
            "trackingNumber": shipment.tracking_number,
            "shipDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "orderItems": [
                {"orderItemId": line.external_line_id, "quantity": line.quantity}
                for line in shipment.lines
            ],
        }
        body = {"marketplaceId": self.marketplace_id, "packageDetail": package}
        path = f"/orders/v0/orders/{quote(order_id, safe='')}/shipmentConfirmation"
        response = self._call("POST", path, "confirmShipment", json_body=body, expect=(400,))
        if response.status == 400:
            raise PermanentError(f"amazon_sc confirmShipment refused: {_error_text(response)}")
        return ShipmentAnswer(shipment.reference, {"status": response.status, "sent": body})

    def _order_items(self, order_id: str) -> list[dict[str, Any]]:
        path = f"/orders/v0/orders/{quote(order_id, safe='')}/orderItems"
        return list(self._call("GET", path, "getOrderItems").json()["payload"]["OrderItems"])

    # -- helpers --------------------------------------------------------------------------------

    def _patch(self, sku: str, patches: list[dict[str, Any]], draft: ProductDraft | None) -> None:
        body = {"productType": self._product_type(draft), "patches": patches}
        response = self._call(
            "PATCH",
            self._item_path(sku),
            "patchListingsItem",
            json_body=body,
            params=self._mp(),
            expect=(404,),
        )
        if response.status == 404:
            raise PermanentError(f"listing {sku} does not exist on Amazon")
        _accepted(response, sku)

    def _product_type(self, draft: ProductDraft | None) -> str:
        """A listing's product type: the product's own (attribute amazon_product_type), else
        the store's mapping of its category; raises PermanentError naming ``productType``
        when there is neither. Stock patches (no draft) name the store's product_type."""
        if draft is None:
            return str(PRODUCT_TYPE.value(self.conn.settings))
        if draft.attributes.get("amazon_product_type"):
            return str(draft.attributes["amazon_product_type"])
        return draft.required_category("Amazon", "productType")

    def _attributes(self, draft: ProductDraft, variant: VariantDraft) -> dict[str, Any]:
        mp = self.marketplace_id
        price, quantity, variant_title = variant.price, variant.quantity, variant.title
        title = f"{draft.title} - {variant_title}" if variant_title else draft.title
        attributes: dict[str, Any] = {
            "item_name": [{"value": title, "language_tag": "en_US", "marketplace_id": mp}],
            "condition_type": [{"value": "new_new", "marketplace_id": mp}],
            "purchasable_offer": [
                {
                    "currency": draft.currency,
                    "marketplace_id": mp,
                    "our_price": [{"schedule": [{"value_with_tax": float(price)}]}],
                }
            ],
            "fulfillment_availability": _quantity_patch(quantity)["value"],
        }
        if draft.description:
            attributes["product_description"] = [
                {"value": draft.description, "language_tag": "en_US", "marketplace_id": mp}
            ]
        # The variant's mapped attributes, under the Amazon attribute names the store gave.
        for name, value in variant.options.items():
            attributes[name] = [{"value": value, "marketplace_id": mp}]
        extra = draft.attributes.get("amazon_attributes")
        if isinstance(extra, Mapping):
            attributes.update(extra)
        return attributes


def _raise_refused(updates: Sequence[InventoryUpdate], refused: Mapping[str, str]) -> None:
    """Raise PushRefused when Amazon refused any of ``updates`` (naming them, sorted)."""
    if not refused:
        return
    accepted = [u for u in updates if u.sku not in refused]
    reasons = "; ".join(f"{sku}: {why}" for sku, why in sorted(refused.items()))
    raise PushRefused(
        f"Amazon refused {sorted(refused)}: {reasons}"[:1500], accepted=accepted, refused=refused
    )


def _quantity_patch(quantity: int) -> dict[str, Any]:
    return {
        "op": "replace",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": CHANNEL, "quantity": max(0, int(quantity))}],
    }


def _skus(external_id: str) -> list[str]:
    return [sku for sku in external_id.split(SKU_SEPARATOR) if sku]


def _error_text(response: HttpResponse) -> str:
    try:
        errors = response.json().get("errors", [])
        return "; ".join(
            f"{e.get('code')}: {e.get('message')} {e.get('details', '')}".strip() for e in errors
        )[:300]
    except (ValueError, AttributeError):
        return f"HTTP {response.status}"


def _accepted(response: HttpResponse, sku: str) -> None:
    """Amazon answers 200 with ``status: INVALID`` for data it refuses: that is permanent."""
    body = response.json()
    if body.get("status") == "INVALID":
        issues = "; ".join(
            f"{i.get('code')}: {i.get('message')}"
            for i in body.get("issues", [])
            if i.get("severity") == "ERROR"
        )
        raise PermanentError(f"Amazon refused listing {sku}: {issues[:300]}")


def _remote(item: Mapping[str, Any]) -> RemoteProduct:
    summary = (item.get("summaries") or [{}])[0]
    quantity = next(
        (
            int(f.get("quantity", 0))
            for f in item.get("fulfillmentAvailability", [])
            if f.get("fulfillmentChannelCode") == CHANNEL
        ),
        0,
    )
    return RemoteProduct(
        external_id=str(item["sku"]),
        title=str(summary.get("itemName", "")),
        quantities={str(item["sku"]): quantity},
        raw=dict(item),
    )


def order_from_api(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> RemoteOrder:
    """A hub order from an Orders v0 ``Order`` and its ``OrderItem`` list."""
    lines = []
    for item in items:
        quantity = int(item.get("QuantityOrdered", 0))
        amount = Decimal(str((item.get("ItemPrice") or {}).get("Amount", "0")))
        lines.append(
            OrderLine(
                sku=str(item.get("SellerSKU", "")),
                quantity=quantity,
                unit_price=(amount / quantity) if quantity else Decimal(0),
                external_line_id=str(item["OrderItemId"]),
            )
        )
    total = order.get("OrderTotal") or {}
    return RemoteOrder(
        external_id=str(order["AmazonOrderId"]),
        lines=lines,
        total=Decimal(str(total.get("Amount", "0"))),
        currency=str(total.get("CurrencyCode", "USD")),
        status=str(order.get("OrderStatus", "")),
        placed_at=_parse_time(order.get("PurchaseDate")),
        updated_at=_parse_time(order.get("LastUpdateDate")),
        raw={"order": dict(order), "items": [dict(i) for i in items]},
        cancelled=order.get("OrderStatus") == CANCELED,
    )


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class AmazonPlugin(Plugin):
    slug = "amazon_sc"
    name = "Amazon Seller Central"
    version = "1.0.0"
    auth_type = AuthType.OAUTH
    capabilities = {
        Capability.LIST_PRODUCTS: ContractLevel.NATIVE,
        Capability.CREATE_PRODUCT: ContractLevel.NATIVE,
        Capability.UPDATE_PRODUCT: ContractLevel.NATIVE,
        Capability.DELETE_PRODUCT: ContractLevel.NATIVE,
        Capability.BULK_OPERATIONS: ContractLevel.NATIVE,
        Capability.REAL_TIME_INVENTORY: ContractLevel.WORKAROUND,
        Capability.ORDER_WEBHOOKS: ContractLevel.NATIVE,
    }
    rate_limit = LISTINGS_RATE
    settings = SETTINGS
    order_queue_setting = SQS_QUEUE_URL.name
    # Login with Amazon's token endpoint, and the S3 buckets of the Feeds API's pre-signed
    # feed and report documents (one per region).
    egress_hosts = (
        "api.amazon.com",
        "tortuga-prod-na.s3-external-1.amazonaws.com",
        "tortuga-prod-eu.s3-eu-west-1.amazonaws.com",
        "tortuga-prod-fe.s3-us-west-2.amazonaws.com",
    )

    def client(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> AmazonClient:
        return AmazonClient(conn, http, log)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent:
        """Always refuses: Amazon delivers notifications only to SQS, unsigned, trusted through
        the queue's access policy. An HTTP POST claiming to be one is forged by definition;
        the SQS consumer (``fusion.plugins.amazon_sqs``) is the only way in."""
        raise PermanentError(
            "Amazon sends ORDER_CHANGE notifications only through SQS; HTTP deliveries are refused"
        )

    def order_queue(
        self, client: PlatformClient, handle: Callable[[WebhookEvent], None]
    ) -> OrderQueue:
        """The store's SQS queue of ORDER_CHANGE notifications; each new one reaches
        ``handle`` as Amazon sent it (processing adds the prices: :meth:`needs_lookup`)."""
        return OrderChangeConsumer.for_store(client.conn, handle, wait_s=LONG_POLL_S)

    def needs_lookup(self, event: WebhookEvent) -> bool:
        """An ORDER_CHANGE notification without the Orders API order: it has no prices."""
        return (
            event.topic == "ORDER_CHANGE"
            and "order" not in event.payload
            and _notified_order_id(event) is not None
        )

    def stock_before_lookup(self, event: WebhookEvent) -> bool:
        """The notification lists its items with their SKUs and quantities (its Summary's
        ``OrderItems``): the stock is taken from them at once, and the prices, which only the
        Orders API has (at 0.5 requests a second), follow."""
        items = event.payload.get("Payload", {}).get("OrderChangeNotification", {})
        items = items.get("Summary", {}).get("OrderItems") or []
        return bool(items) and all(
            i.get("SellerSKU") and i.get("Quantity") is not None for i in items
        )

    def delivery_is_for(
        self, headers: Mapping[str, str], event: WebhookEvent, external_id: str
    ) -> bool:
        """The notification's ``SellerId`` (in its one ``Payload`` object, e.g.
        ``OrderChangeNotification``) is the store's seller id. The queue is the store's own,
        but a queue the seller shares with another seller account must not mix them."""
        payload = event.payload.get("Payload")
        if not isinstance(payload, Mapping):
            return False
        sellers = {
            str(body.get("SellerId") or "").strip()
            for body in payload.values()
            if isinstance(body, Mapping)
        }
        return sellers == {external_id.strip()} and external_id.strip() != ""

    def order_from_event(self, event: WebhookEvent) -> RemoteOrder | None:
        """The order an ORDER_CHANGE event carries: the Orders API order (with prices) that
        :meth:`AmazonClient.complete_event` added under ``order``/``items``, else the lines of
        the notification itself, which has no prices (unit prices 0)."""
        if event.topic != "ORDER_CHANGE":
            return None
        if "order" in event.payload:
            return order_from_api(event.payload["order"], event.payload.get("items", []))
        change = event.payload.get("Payload", {}).get("OrderChangeNotification", {})
        summary = change.get("Summary", {})
        lines = [
            OrderLine(
                sku=str(item.get("SellerSKU", "")),
                quantity=int(item.get("Quantity", 0)),
                unit_price=Decimal(0),
                external_line_id=str(item.get("OrderItemId", "")),
            )
            for item in summary.get("OrderItems", [])
        ]
        return RemoteOrder(
            external_id=str(change.get("AmazonOrderId", "")),
            lines=lines,
            total=Decimal(0),
            currency="USD",
            status=str(summary.get("OrderStatus", "")),
            placed_at=_parse_time(summary.get("PurchaseDate")),
            updated_at=_parse_time(
                change.get("OrderChangeTrigger", {}).get("TimeOfOrderChange")
                or event.payload.get("EventTime")
            ),
            raw=dict(event.payload),
            cancelled=summary.get("OrderStatus") == CANCELED,
        )


def _notified_order_id(event: WebhookEvent) -> str | None:
    change = event.payload.get("Payload", {}).get("OrderChangeNotification", {})
    order_id = change.get("AmazonOrderId")
    return str(order_id) if order_id else None


plugin = AmazonPlugin()
