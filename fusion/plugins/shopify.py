"""Shopify through the Admin GraphQL API (2026-07).

- One endpoint, ``POST {base_url}/admin/api/2026-07/graphql.json`` with
  ``X-Shopify-Access-Token``. GraphQL failures come back with HTTP 200: ``THROTTLED`` becomes
  ``RateLimited`` (wait = missing points / restore rate), other top-level errors and
  ``userErrors`` become ``PermanentError``. Every answer's ``extensions.cost.throttleStatus``
  is fed back into the store's shared bucket (capacity, level, restore rate).
- Products and variants: ``productSet`` (declarative; one option "SKU" whose values are the
  SKUs, so variants are matched by SKU on every update). Create is idempotent through the
  product handle: ``productSet(identifier: {handle: "fusion-<idempotency key>"})`` upserts, so a
  create retried after a timeout updates the product the first attempt made.
- Inventory: ``inventorySetQuantities`` on the store's primary location with the mandatory
  ``@idempotent`` key and ``changeFromQuantity: null`` (the hub is the source of truth).
- Bulk: staged upload of JSONL variables, ``bulkOperationRunMutation`` of
  ``inventorySetQuantities``, polling ``bulkOperation(id:)``, then the result file checked line by
  line.
- Orders: ``orders/create`` (and ``orders/paid``/``orders/updated``) webhooks signed with
  ``X-Shopify-Hmac-SHA256``; ``fetch_orders`` reconciles with ``orders(query: "updated_at:>...")``.

Store fields: ``external_id`` = the shop domain; ``base_url`` = ``https://<shop>.myshopify.com``;
``credentials`` = ``access_token``; ``settings`` (optional) = ``bulk_poll_interval_s``,
``bulk_timeout_s``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fusion.errors import MalformedWebhook, PermanentError, RateLimited, RetryableError
from fusion.plugins import _shopify_queries as q
from fusion.plugins._shopify_bulk import BULK_SETTINGS, BulkInventory
from fusion.plugins._shopify_ids import RememberedIds, StaleIds, latest, stale_codes
from fusion.plugins._shopify_media import ProductMedia, media_ids
from fusion.plugins.base import (
    AuthType,
    Capability,
    HttpClient,
    InventoryUpdate,
    OrderLine,
    PlatformClient,
    Plugin,
    ProductDraft,
    ProductPage,
    RefundLine,
    RemoteOrder,
    RemoteProduct,
    RemoteRefund,
    RemoteVariant,
    Shipment,
    ShipmentAnswer,
    StoreConnection,
    WebhookEvent,
)
from fusion.plugins.http import HTTP_SETTINGS
from fusion.plugins.models import ContractLevel
from fusion.ratelimit.spec import ApiCall, RateLimitSpec
from fusion.security.signing import verify_shopify_hmac

GRAPHQL_PATH = f"/admin/api/{q.API_VERSION}/graphql.json"
OPTION = "SKU"
ORDER_TOPICS = frozenset(q.ORDER_SUBSCRIPTION_TOPICS)
# Shopify retries a failed delivery for about 4 hours with the original X-Shopify-Triggered-At,
# so an older delivery is a replay; a little clock skew is tolerated the other way.
WEBHOOK_MAX_AGE = timedelta(hours=5)
WEBHOOK_MAX_SKEW = timedelta(minutes=5)
RETRYABLE_CODES = frozenset({"INTERNAL_SERVER_ERROR", "IDEMPOTENCY_CONCURRENT_REQUEST"})


_known_maximum: dict[str, float] = {}


class _TooCostly(RateLimited):
    """THROTTLED for a query that costs more than the whole bucket: only a smaller one helps."""

    def __init__(self, message: str) -> None:
        super().__init__(1.0, message)


class ShopifyClient(RememberedIds, BulkInventory, ProductMedia, PlatformClient):
    def __init__(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(conn, http, log)
        self._location: str | None = None
        # The shop's bucket size, once Shopify has said it (remembered per process, so the
        # next job's first page already fits).
        self._maximum: float | None = _known_maximum.get(conn.store_id)

    # -- transport ------------------------------------------------------------------------------

    def graphql(
        self, operation: str, query: str, variables: Mapping[str, Any], *, items: int = 1
    ) -> dict[str, Any]:
        """Run one operation (``items`` = its page size, for pricing); returns ``data``.
        Raises RateLimited on THROTTLED, PermanentError on other GraphQL errors, and the HTTP
        helper's errors otherwise."""
        response = self.http.request(
            "POST",
            GRAPHQL_PATH,
            call=ApiCall(operation=f"graphql:{operation}", items=items),
            headers={
                "X-Shopify-Access-Token": str.__str__(self.conn.credentials["access_token"]),
                "Content-Type": "application/json",
            },
            json={"query": query, "variables": dict(variables), "operationName": operation},
        )
        try:
            body = response.json()
        except ValueError:
            raise RetryableError("shopify answered a body that is not JSON") from None
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        if status:
            self._maximum = _known_maximum[self.conn.store_id] = float(status["maximumAvailable"])
            self.http.feedback(
                available=float(status["currentlyAvailable"]),
                capacity=float(status["maximumAvailable"]),
                refill_rate=float(status["restoreRate"]),
            )
        errors = body.get("errors")
        if errors:
            codes = [((e.get("extensions") or {}).get("code")) for e in errors]
            if "THROTTLED" in codes:
                requested = float(cost.get("requestedQueryCost") or 0)
                if status and requested > float(status["maximumAvailable"]):
                    # No wait would let this through: the caller must ask for less.
                    raise _TooCostly(f"shopify {operation} costs more than the whole bucket")
                wait = _throttle_wait(cost, status)
                self.http.feedback(retry_after_s=wait)
                raise RateLimited(wait, f"shopify throttled {operation}; retry in {wait:.2f}s")
            message = "; ".join(str(e.get("message")) for e in errors)[:500]
            if any(code in RETRYABLE_CODES for code in codes):
                raise RetryableError(f"shopify {operation}: {message}")
            raise PermanentError(f"shopify {operation} refused: {message}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise RetryableError(f"shopify {operation}: answer without data")
        return data

    def _payload(self, data: Mapping[str, Any], field: str, operation: str) -> dict[str, Any]:
        payload = data.get(field) or {}
        user_errors = payload.get("userErrors") or []
        if user_errors:
            codes = {e.get("code") for e in user_errors}
            message = "; ".join(
                f"{'.'.join(e.get('field') or [])}: {e.get('message')}".lstrip(": ")
                for e in user_errors
            )
            if codes & RETRYABLE_CODES:
                raise RetryableError(f"shopify {operation}: {message}")
            raise PermanentError(f"shopify {operation} refused: {message}")
        return dict(payload)

    # -- products -------------------------------------------------------------------------------

    def _page(
        self, operation: str, query: str, variables: Mapping[str, Any], limit: int, node_cost: int
    ) -> dict[str, Any]:
        """One page of a connection query, sized to fit the shop's bucket: a page that costs
        more than the whole bucket would be throttled forever, so when Shopify reveals a smaller
        bucket the page shrinks and is asked for again at once."""
        while True:
            first = q.page_size(limit, node_cost, self._maximum)
            try:
                return self.graphql(operation, query, {**variables, "first": first}, items=first)
            except _TooCostly:
                if q.page_size(limit, node_cost, self._maximum) >= first:
                    raise PermanentError(
                        f"shopify {operation}: one node costs more than the shop's bucket"
                    ) from None

    def list_products(self) -> list[RemoteProduct]:
        products: list[RemoteProduct] = []
        cursor: str | None = None
        while True:
            page = self.list_products_page(cursor)
            products.extend(page.products)
            if page.next_cursor is None:
                return products
            cursor = page.next_cursor

    def list_products_page(self, cursor: str | None) -> ProductPage:
        """One page of ``products`` after the connection cursor ``cursor``."""
        data = self._page(
            "listProducts", q.LIST_PRODUCTS, {"after": cursor}, q.LIST_PAGE, q.LIST_NODE_COST
        )
        page = data["products"]
        for node in page["nodes"]:
            self.remember_variants((node.get("variants") or {}).get("nodes") or [])
        more = page["pageInfo"]["hasNextPage"]
        return ProductPage(
            products=[_remote_product(node) for node in page["nodes"]],
            next_cursor=str(page["pageInfo"]["endCursor"]) if more else None,
        )

    def create_product(self, draft: ProductDraft) -> RemoteProduct:
        """Create (or, on a retry, converge) the product whose handle is derived from the
        draft's idempotency key; initial stock is set at the primary location."""
        handle = product_handle(draft)
        location = self.primary_location()
        product_input = _product_input(draft, location=location)
        product_input["handle"] = handle
        document = self._with_files(draft, product_input)
        data = self.graphql(
            "productSet",
            document,
            {"input": product_input, "identifier": {"handle": handle}},
        )
        product = self._payload(data, "productSet", "productSet")["product"]
        self.remember_variants((product.get("variants") or {}).get("nodes") or [])
        return _with_media(_remote_product(product), draft, product)

    def update_product(self, external_id: str, draft: ProductDraft) -> RemoteProduct:
        """Make the product match ``draft`` (title, description, variants by SKU, prices);
        variants not in the draft are removed, as ``productSet`` does. Stock is not touched."""
        product_input = _product_input(draft, location=None)
        document = self._with_files(draft, product_input)
        data = self.graphql(
            "productSet",
            document,
            {"input": product_input, "identifier": {"id": external_id}},
        )
        product = self._payload(data, "productSet", "productSet")["product"]
        self.remember_variants((product.get("variants") or {}).get("nodes") or [])
        return _with_media(_remote_product(product), draft, product)

    def delete_product(self, external_id: str) -> None:
        """Delete the product; one that is already gone counts as deleted (a retried delete)."""
        data = self.graphql("productDelete", q.PRODUCT_DELETE, {"id": external_id})
        payload = data.get("productDelete") or {}
        errors = payload.get("userErrors") or []
        if errors and all("does not exist" in str(e.get("message")) for e in errors):
            self.log(f"shopify product {external_id} was already deleted")
            return
        self._payload(data, "productDelete", "productDelete")

    # -- inventory ------------------------------------------------------------------------------

    def set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        """Set the available quantity of each SKU (the last update of a SKU wins), up to
        ``INVENTORY_BATCH`` per ``inventorySetQuantities``; with the ids remembered, that one
        mutation is the whole push (``_shopify_ids``)."""
        wanted = latest(updates)
        skus = list(wanted)
        for start in range(0, len(skus), q.INVENTORY_BATCH):
            batch = {sku: wanted[sku] for sku in skus[start : start + q.INVENTORY_BATCH]}
            self.with_ids(batch, self._set_batch)

    def _set_batch(self, quantities: list[dict[str, Any]], recoverable: bool) -> None:
        variables = {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": "gid://fusion-stage-hub/InventorySync/"
                f"{self.conn.store_id}",
                "quantities": quantities,
            },
            # A fresh key per request: absolute quantities are safe to resend, and reusing a
            # key for a later push of the same figures would replay instead of applying.
            "key": str(uuid.uuid4()),
        }
        data = self.graphql("inventorySet", q.INVENTORY_SET, variables)
        errors = (data.get("inventorySetQuantities") or {}).get("userErrors") or []
        if recoverable and stale_codes(errors):
            raise StaleIds(", ".join(sorted(stale_codes(errors))))
        self._payload(data, "inventorySetQuantities", "inventorySetQuantities")

    def bulk_set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        """One bulk operation: stage the JSONL variables, run ``inventorySetQuantities`` over
        them, poll until it finishes and check every result line (a stale remembered id:
        looked up again and the whole operation run once more; absolute figures are safe to
        resend)."""
        wanted = latest(updates)
        if wanted:
            self.with_ids(wanted, self._run_inventory_bulk)

    # -- orders ---------------------------------------------------------------------------------

    def subscribe_order_events(self, uri: str, secret: str | None) -> list[str]:
        """Subscribe ``uri`` to the order topics the hub acts on, skipping those it already
        has (so a second run changes nothing); returns the topics subscribed. Shopify signs
        deliveries with the app's client secret, so ``secret`` is not sent."""
        topics = {**q.ORDER_SUBSCRIPTION_TOPICS, **q.REFUND_SUBSCRIPTION_TOPICS}
        data = self.graphql(
            "orderSubscriptions", q.SUBSCRIPTIONS, {"uri": uri, "topics": list(topics.values())}
        )
        present = {n["topic"] for n in data["webhookSubscriptions"]["nodes"] if n["uri"] == uri}
        added = []
        for topic, name in topics.items():
            if name in present:
                continue
            variables = {"topic": name, "subscription": {"uri": uri, "format": "JSON"}}
            result = self.graphql("subscribe", q.SUBSCRIBE, variables)
            self._payload(result, "webhookSubscriptionCreate", "webhookSubscriptionCreate")
            added.append(topic)
        return added

    def fetch_orders(self, since: datetime) -> list[RemoteOrder]:
        stamp = since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        orders: list[RemoteOrder] = []
        after: str | None = None
        while True:
            data = self._page(
                "recentOrders",
                q.ORDERS,
                {"after": after, "query": f"updated_at:>'{stamp}'"},
                q.ORDERS_PAGE,
                q.ORDER_NODE_COST,
            )
            page = data["orders"]
            orders.extend(_order_from_graphql(node) for node in page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return orders
            after = page["pageInfo"]["endCursor"]

    def ship_order(self, shipment: Shipment) -> ShipmentAnswer:
        """``fulfillmentCreate`` on the order's fulfillment orders holding the shipment's line
        items, with its tracking (the customer is notified). A fulfillment of the order with
        the same tracking number already there (a retry after a lost answer) is answered as it
        is. Raises PermanentError with Shopify's userErrors when it refuses, and for an order
        or line item Shopify does not show."""
        data = self.graphql(
            "orderFulfilment", q.ORDER_FULFILMENT, {"id": shipment.order_external_id}
        )
        order = data.get("order")
        if not order:
            raise PermanentError(f"shopify shows no order {shipment.order_external_id}")
        for made in order.get("fulfillments") or []:
            numbers = {t.get("number") for t in made.get("trackingInfo") or []}
            if shipment.tracking_number in numbers:
                return ShipmentAnswer(str(made["id"]), made, already=True)
        tracking = {"company": shipment.carrier, "number": shipment.tracking_number}
        if shipment.tracking_url:
            tracking["url"] = shipment.tracking_url
        variables = {
            "fulfillment": {
                "lineItemsByFulfillmentOrder": _by_fulfillment_order(order, shipment),
                "trackingInfo": tracking,
                "notifyCustomer": True,
            },
            "message": f"fusion fulfilment {shipment.reference}",
        }
        result = self.graphql("fulfil", q.FULFILMENT_CREATE, variables)
        payload = self._payload(result, "fulfillmentCreate", "fulfillmentCreate")
        made = payload.get("fulfillment") or {}
        return ShipmentAnswer(str(made.get("id") or "") or None, payload)


class ShopifyPlugin(Plugin):
    slug = "shopify"
    name = "Shopify"
    version = "1.0.0"
    auth_type = AuthType.OAUTH
    capabilities = {capability: ContractLevel.NATIVE for capability in Capability}
    # Points, not requests: Shopify's cost bucket (1000 points, 50 restored per second, the
    # store's plan may say more and throttleStatus corrects it).
    rate_limit = RateLimitSpec(
        requests_per_second=50.0,
        burst_size=1000,
        cost=lambda call: q.call_cost(call.operation, call.items),
    )
    settings = (*BULK_SETTINGS, *HTTP_SETTINGS)
    # stagedUploadsCreate's upload targets and bulk operations' result files live in Google
    # Cloud Storage.
    egress_hosts = ("shopify-staged-uploads.storage.googleapis.com", "storage.googleapis.com")

    def client(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> ShopifyClient:
        return ShopifyClient(conn, http, log)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent:
        """Check ``X-Shopify-Hmac-SHA256`` over the raw body (constant-time), refuse a delivery
        triggered more than 5 hours ago (past Shopify's retry window) or in the future, and
        return the event keyed by ``X-Shopify-Webhook-Id``. Raises PermanentError otherwise."""
        h = {k.lower(): v for k, v in headers.items()}
        verify_shopify_hmac(secret, body, h.get("x-shopify-hmac-sha256"))
        delivery_id, topic = h.get("x-shopify-webhook-id"), h.get("x-shopify-topic")
        if not delivery_id or not topic:
            raise PermanentError("missing X-Shopify-Webhook-Id or X-Shopify-Topic header")
        triggered = h.get("x-shopify-triggered-at")
        if triggered:
            try:
                at = _parse_time(triggered)
            except ValueError:
                raise PermanentError("X-Shopify-Triggered-At is not a timestamp") from None
            now = datetime.now(UTC)
            if at < now - WEBHOOK_MAX_AGE:
                raise PermanentError("webhook delivery is stale (triggered over 5 hours ago)")
            if at > now + WEBHOOK_MAX_SKEW:
                raise PermanentError("webhook delivery is from the future")
        try:
            payload = json.loads(body)
        except ValueError:
            raise MalformedWebhook("webhook body is not JSON") from None
        if not isinstance(payload, dict):
            raise MalformedWebhook("webhook body is not a JSON object")
        return WebhookEvent(delivery_id=delivery_id, topic=topic, payload=payload)

    def delivery_is_for(
        self, headers: Mapping[str, str], event: WebhookEvent, external_id: str
    ) -> bool:
        """``X-Shopify-Shop-Domain`` is the store's shop domain (case-insensitive, as DNS
        names are). Shopify sets it on every delivery. The HMAC does not cover it, but what
        it stops is Shopify itself delivering one shop's events to another store's address
        (a subscription the other shop's owner pointed there), signed with an app secret the
        two stores share; forging it would take a captured delivery."""
        named = next((v for k, v in headers.items() if k.lower() == "x-shopify-shop-domain"), "")
        return bool(named.strip()) and named.strip().lower() == external_id.strip().lower()

    def order_from_event(self, event: WebhookEvent) -> RemoteOrder | None:
        """The order of an ``orders/*`` event (REST order JSON), keyed by its GraphQL id so the
        webhook and the reconciliation pull name the same order; None for other topics."""
        if event.topic not in ORDER_TOPICS:
            return None
        p = event.payload
        try:
            return RemoteOrder(
                external_id=str(p.get("admin_graphql_api_id") or f"gid://shopify/Order/{p['id']}"),
                lines=[
                    OrderLine(
                        sku=str(line.get("sku") or ""),
                        quantity=int(line["quantity"]),
                        unit_price=Decimal(str(line["price"])),
                        external_line_id=f"gid://shopify/LineItem/{line['id']}",
                    )
                    for line in p.get("line_items", [])
                ],
                total=Decimal(str(p["total_price"])),
                currency=str(p.get("currency") or "USD"),
                status="cancelled"
                if p.get("cancelled_at")
                else str(p.get("financial_status") or "unknown"),
                placed_at=_parse_time(p["created_at"]) if p.get("created_at") else None,
                updated_at=_parse_time(p["updated_at"]) if p.get("updated_at") else None,
                raw=p,
                cancelled=bool(p.get("cancelled_at")),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise PermanentError(f"malformed shopify order payload: {type(exc).__name__}") from None

    def refund_from_event(self, event: WebhookEvent) -> RemoteRefund | None:
        """The refunded lines of a ``refunds/create`` event (REST refund JSON), each keyed by
        its refund line id; a ``no_restock`` line comes back without its stock. None for other
        topics. Raises PermanentError for a payload it cannot read."""
        if event.topic not in q.REFUND_SUBSCRIPTION_TOPICS:
            return None
        p = event.payload
        try:
            return RemoteRefund(
                order_external_id=f"gid://shopify/Order/{int(p['order_id'])}",
                lines=[
                    RefundLine(
                        external_line_id=f"gid://shopify/LineItem/{int(line['line_item_id'])}",
                        quantity=int(line["quantity"]),
                        key=f"shopify-refund-line:{int(line['id'])}",
                        restock=line.get("restock_type") != "no_restock",
                    )
                    for line in p.get("refund_line_items") or []
                ],
                raw=p,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(
                f"malformed shopify refund payload: {type(exc).__name__}"
            ) from None


# -- helpers --------------------------------------------------------------------------------------


def _by_fulfillment_order(order: Mapping[str, Any], shipment: Shipment) -> list[dict[str, Any]]:
    """The shipment's lines as fulfillment order line items, grouped by fulfillment order: the
    quantity asked is sent as it is (Shopify judges what is left to fulfil). Raises
    PermanentError for a line no fulfillment order holds."""
    where: dict[str, tuple[str, str]] = {}
    for fulfillment_order in order["fulfillmentOrders"]["nodes"]:
        for item in fulfillment_order["lineItems"]["nodes"]:
            line_id = item["lineItem"]["id"]
            if line_id not in where or item["remainingQuantity"] > 0:
                where[line_id] = (fulfillment_order["id"], item["id"])
    grouped: dict[str, list[dict[str, Any]]] = {}
    for line in shipment.lines:
        if line.external_line_id not in where:
            raise PermanentError(f"shopify holds no fulfillment order for line {line.sku}")
        fulfillment_order_id, item_id = where[line.external_line_id]
        grouped.setdefault(fulfillment_order_id, []).append(
            {"id": item_id, "quantity": line.quantity}
        )
    return [
        {"fulfillmentOrderId": fo_id, "fulfillmentOrderLineItems": items}
        for fo_id, items in grouped.items()
    ]


def product_handle(draft: ProductDraft) -> str:
    """The handle a draft's product gets: stable for one idempotency key (or, without one, for
    its first SKU), so the same create always names the same product."""
    seed = draft.idempotency_key or (draft.variants[0].sku if draft.variants else draft.title)
    slug = re.sub(r"[^a-z0-9]+", "-", seed.lower()).strip("-")
    return f"fusion-{slug}"[:255]


def _product_input(draft: ProductDraft, *, location: str | None) -> dict[str, Any]:
    if not draft.variants:
        raise PermanentError("a Shopify product needs at least one variant")
    # The variants' mapped attributes are options after the SKU, which keeps them apart.
    names = sorted({name for v in draft.variants for name in v.options})[:2]
    variants = []
    for variant in draft.variants:
        item: dict[str, Any] = {
            "optionValues": [{"optionName": OPTION, "name": variant.sku}]
            + [{"optionName": n, "name": variant.options.get(n, "-")} for n in names],
            "sku": variant.sku,
            "price": f"{Decimal(variant.price):.2f}",
            "inventoryItem": {"tracked": True},
        }
        if location is not None:
            item["inventoryQuantities"] = [
                {"locationId": location, "name": "available", "quantity": variant.quantity}
            ]
        variants.append(item)
    product: dict[str, Any] = {
        "title": draft.title,
        "descriptionHtml": draft.description,
        "status": "ACTIVE",
        "productOptions": [{"name": OPTION, "values": [{"name": v.sku} for v in draft.variants]}]
        + [
            {"name": n, "values": [{"name": value} for value in _distinct(draft, n)]} for n in names
        ],
        "variants": variants,
    }
    if draft.category is not None:  # Shopify's product type is free text, and optional
        product["productType"] = draft.category
    return product


def _distinct(draft: ProductDraft, name: str) -> list[str]:
    return list(dict.fromkeys(v.options.get(name, "-") for v in draft.variants))


def _remote_product(node: Mapping[str, Any]) -> RemoteProduct:
    variants = (node.get("variants") or {}).get("nodes") or []
    return RemoteProduct(
        external_id=str(node["id"]),
        title=str(node.get("title") or ""),
        quantities={
            str(v["sku"]): int(v.get("inventoryQuantity") or 0) for v in variants if v.get("sku")
        },
        url=None,
        raw={"handle": node.get("handle"), "variants": variants},
        variants=[
            RemoteVariant(
                sku=str(v.get("sku") or ""),
                quantity=int(v.get("inventoryQuantity") or 0),
                price=Decimal(str(v["price"])) if v.get("price") is not None else None,
                barcode=v.get("barcode") or None,
                title=str(v.get("title") or ""),
            )
            for v in variants
        ],
    )


def _with_media(
    remote: RemoteProduct, draft: ProductDraft, product: Mapping[str, Any]
) -> RemoteProduct:
    kept = media_ids(draft, product)
    return replace(remote, raw={**remote.raw, **kept}) if kept else remote


def _order_from_graphql(node: Mapping[str, Any]) -> RemoteOrder:
    total = node["totalPriceSet"]["shopMoney"]
    return RemoteOrder(
        external_id=str(node["id"]),
        lines=[
            OrderLine(
                sku=str(line.get("sku") or ""),
                quantity=int(line["quantity"]),
                unit_price=Decimal(str(line["originalUnitPriceSet"]["shopMoney"]["amount"])),
                external_line_id=str(line["id"]),
            )
            for line in node["lineItems"]["nodes"]
        ],
        total=Decimal(str(total["amount"])),
        currency=str(total.get("currencyCode") or node.get("currencyCode") or "USD"),
        status="cancelled"
        if node.get("cancelledAt")
        else str(node.get("displayFinancialStatus") or "unknown").lower(),
        placed_at=_parse_time(str(node["createdAt"])),
        updated_at=_parse_time(str(node["updatedAt"])) if node.get("updatedAt") else None,
        raw=dict(node),
        cancelled=bool(node.get("cancelledAt")),
    )


def _throttle_wait(cost: Mapping[str, Any], status: Mapping[str, Any]) -> float:
    """Seconds until the bucket holds the requested cost again (at least a tenth of one)."""
    requested = float(cost.get("requestedQueryCost") or 0)
    available = float(status.get("currentlyAvailable") or 0)
    rate = float(status.get("restoreRate") or 0)
    if rate <= 0:
        return 1.0
    return max(0.1, (requested - available) / rate)


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


plugin = ShopifyPlugin()
