"""In-memory state of the Amazon SP-API sandbox: sellers, listings, feeds, orders, quotas.

Pure logic over dictionaries (no HTTP here): the WSGI layer in ``fusion/sandbox/amazon.py``
parses a request, calls one of these functions under the sandbox lock, and renders the result.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fusion.sandbox.knobs import TokenBucket

DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"
DEFAULT_CHANNEL = "DEFAULT"  # merchant-fulfilled quantity; FBA channels are Amazon's to set

# Usage plans (requests per second, burst) per operation and selling-partner account, from the
# SP-API rate-limit pages (PLATFORMS.md §3.2, §3.3). Orders figures are the Orders v0 plan.
USAGE_PLANS: dict[str, tuple[float, float]] = {
    "getListingsItem": (5.0, 5.0),
    "putListingsItem": (5.0, 5.0),
    "patchListingsItem": (5.0, 5.0),
    "deleteListingsItem": (5.0, 5.0),
    "searchListingsItems": (5.0, 5.0),
    "createFeedDocument": (0.5, 15.0),
    "createFeed": (0.0083, 15.0),
    "getFeed": (2.0, 15.0),
    "getFeedDocument": (0.0222, 10.0),
    "getOrders": (0.0167, 20.0),
    "getOrder": (0.5, 30.0),
    "getOrderItems": (0.5, 30.0),
    "confirmShipment": (2.0, 10.0),
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str) -> datetime:
    """An ISO-8601 timestamp (``Z`` or offset); raises ValueError on anything else."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Listing:
    sku: str
    product_type: str
    attributes: dict[str, Any]
    asin: str = field(default_factory=lambda: "B0" + secrets.token_hex(4).upper())
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    # image locator attribute -> what the sandbox fetched from its URL (_amazon_images)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)

    def quantity(self) -> int | None:
        for entry in self.attributes.get("fulfillment_availability", []):
            if entry.get("fulfillment_channel_code") == DEFAULT_CHANNEL:
                quantity = entry.get("quantity")
                return int(quantity) if quantity is not None else None
        return None

    def set_quantity(self, quantity: int) -> None:
        self.attributes["fulfillment_availability"] = [
            {"fulfillment_channel_code": DEFAULT_CHANNEL, "quantity": quantity}
        ]
        self.updated = now_iso()


@dataclass
class Seller:
    seller_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    marketplace_id: str = DEFAULT_MARKETPLACE
    token_ttl_s: float = 3600.0
    tokens_issued: int = 0
    queue_url: str | None = None
    listings: dict[str, Listing] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)


def apply_patches(listing: Listing, patches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply Listings Items patch operations to ``listing``; return the issues for paths the
    API would refuse (only ``/attributes/{name}`` is addressable), changing nothing then."""
    issues = []
    for patch in patches:
        parts = str(patch.get("path", "")).strip("/").split("/")
        if len(parts) != 2 or parts[0] != "attributes" or not parts[1]:
            issues.append(issue("4000001", f"Invalid patch path: {patch.get('path')!r}"))
    if issues:
        return issues
    for patch in patches:
        name = str(patch["path"]).strip("/").split("/")[1]
        op, value = patch["op"], patch.get("value")
        if op in ("add", "replace"):
            listing.attributes[name] = copy.deepcopy(value)
        elif op == "merge":
            merged = dict((listing.attributes.get(name) or [{}])[0])
            merged.update((value or [{}])[0])
            listing.attributes[name] = [merged]
        elif op == "delete":
            listing.attributes.pop(name, None)
    listing.updated = now_iso()
    return []


def issue(code: str, message: str, attribute: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": code,
        "message": message,
        "severity": "ERROR",
        "categories": ["INVALID_ATTRIBUTE"],
    }
    if attribute:
        out["attributeNames"] = [attribute]
    return out


def required_attribute_issues(product_type: str, attributes: dict[str, Any]) -> list[dict]:
    """The sandbox's stand-in for product-type requirements: every LISTING needs a name."""
    if product_type and attributes.get("item_name"):
        return []
    return [issue("90220", "'item_name' is required but not supplied.", "item_name")]


def item_view(seller: Seller, listing: Listing, included: set[str]) -> dict[str, Any]:
    """A listing as ``getListingsItem`` renders it, limited to ``includedData``."""
    item: dict[str, Any] = {"sku": listing.sku}
    if "summaries" in included:
        names = listing.attributes.get("item_name") or [{}]
        item["summaries"] = [
            {
                "marketplaceId": seller.marketplace_id,
                "asin": listing.asin,
                "productType": listing.product_type,
                "conditionType": "new_new",
                "status": ["BUYABLE"] if (listing.quantity() or 0) > 0 else ["DISCOVERABLE"],
                "itemName": str(names[0].get("value", "")),
                "createdDate": listing.created,
                "lastUpdatedDate": listing.updated,
            }
        ]
        main = listing.images.get("main_product_image_locator")
        if main:
            item["summaries"][0]["mainImage"] = {"link": main["url"]}
    if "attributes" in included:
        item["attributes"] = copy.deepcopy(listing.attributes)
    if "issues" in included:
        item["issues"] = []
    if "fulfillmentAvailability" in included:
        quantity = listing.quantity()
        item["fulfillmentAvailability"] = (
            [{"fulfillmentChannelCode": DEFAULT_CHANNEL, "quantity": quantity}]
            if quantity is not None
            else []
        )
    if "productTypes" in included:
        item["productTypes"] = [
            {"marketplaceId": seller.marketplace_id, "productType": listing.product_type}
        ]
    return item


def process_feed(
    seller: Seller,
    feed: dict[str, Any],
    document: dict[str, Any],
    *,
    refuse: frozenset[str] = frozenset(),
) -> dict:
    """Run a JSON_LISTINGS_FEED document against the listings; return its processing report.
    A message for a SKU in ``refuse`` (the ``refuse_skus`` knob) is refused, changing nothing,
    with the issue Amazon gives a listing it will not change."""
    report_issues: list[dict[str, Any]] = []
    accepted = 0
    messages = document.get("messages", [])
    for message in messages:
        sku, op = message["sku"], message["operationType"]
        found: list[dict[str, Any]] = []
        if sku in refuse:
            found = [issue("8105", f"SKU {sku!r}: the listing cannot be changed at this time.")]
        elif op == "DELETE":
            if seller.listings.pop(sku, None) is None:
                found = [issue("4000003", f"SKU {sku!r} not found.")]
        elif op in ("UPDATE", "PARTIAL_UPDATE"):
            current = seller.listings.get(sku)
            attributes = dict(message.get("attributes", {}))
            if op == "PARTIAL_UPDATE" and current is not None:
                attributes = {**current.attributes, **attributes}
            found = required_attribute_issues(message["productType"], attributes)
            if not found:
                seller.listings[sku] = Listing(sku, message["productType"], attributes)
        elif op == "PATCH":
            listing = seller.listings.get(sku)
            if listing is None:
                found = [issue("4000003", f"SKU {sku!r} not found.")]
            else:
                found = apply_patches(listing, message.get("patches", []))
        for found_issue in found:
            report_issues.append({"messageId": message["messageId"], **found_issue})
        accepted += 0 if found else 1
    return {
        "header": {"sellerId": seller.seller_id, "version": "2.0", "feedId": feed["feedId"]},
        "issues": [
            {k: v for k, v in i.items() if k in ("messageId", "code", "severity", "message")}
            for i in report_issues
        ],
        "summary": {
            "errors": len(report_issues),
            "warnings": 0,
            "messagesProcessed": len(messages),
            "messagesAccepted": accepted,
            "messagesInvalid": len(messages) - accepted,
        },
    }


def new_order_id() -> str:
    digits = f"{uuid.uuid4().int:020d}"
    return f"{digits[:3]}-{digits[3:10]}-{digits[10:17]}"


def order_view(order: dict[str, Any]) -> dict[str, Any]:
    """An order as the Orders API v0 ``Order`` renders it."""
    return {
        key: order[key]
        for key in (
            "AmazonOrderId",
            "PurchaseDate",
            "LastUpdateDate",
            "OrderStatus",
            "FulfillmentChannel",
            "OrderTotal",
            "NumberOfItemsShipped",
            "NumberOfItemsUnshipped",
            "MarketplaceId",
            "OrderType",
        )
    }


def order_change_notification(seller: Seller, order: dict[str, Any], app_id: str) -> dict:
    """The ORDER_CHANGE notification Amazon puts on the seller's SQS queue (unsigned)."""
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": now_iso(),
        "Payload": {
            "OrderChangeNotification": {
                "NotificationLevel": "OrderLevel",
                "SellerId": seller.seller_id,
                "AmazonOrderId": order["AmazonOrderId"],
                "OrderChangeType": "OrderStatusChange",
                "OrderChangeTrigger": {
                    "TimeOfOrderChange": order["LastUpdateDate"],
                    "ChangeReason": "Order status changed",
                },
                "Summary": {
                    "MarketplaceId": order["MarketplaceId"],
                    "OrderStatus": order["OrderStatus"],
                    "PurchaseDate": order["PurchaseDate"],
                    "DestinationPostalCode": "98101",
                    "FulfillmentType": "MFN",
                    "OrderType": "StandardOrder",
                    "NumberOfItemsShipped": 0,
                    "NumberOfItemsUnshipped": order["NumberOfItemsUnshipped"],
                    "OrderItems": [
                        {
                            "OrderItemId": item["OrderItemId"],
                            "SellerSKU": item["SellerSKU"],
                            "SupplySourceId": None,
                            "OrderItemStatus": "Unshipped",
                            "Quantity": item["QuantityOrdered"],
                            "QuantityShipped": 0,
                            "IsBuyerRequestedCancel": False,
                        }
                        for item in order["items"]
                    ],
                },
            }
        },
        "NotificationMetadata": {
            "ApplicationId": app_id,
            "SubscriptionId": str(uuid.uuid4()),
            "PublishTime": now_iso(),
            "NotificationId": str(uuid.uuid4()),
        },
    }
