"""Amazon SP-API sandbox: LWA tokens, Listings Items 2021-08-01, Feeds 2021-06-30, Orders v0,
and ORDER_CHANGE notifications on an SQS queue (moto's server, started on the first shop).

Shops (``POST /_sandbox/shops``) take ``{"shop": sellerId, "client_id", "client_secret",
"refresh_token", "marketplace_id"?, "token_ttl_s"?}`` and answer with the seller plus the
queue its ORDER_CHANGE notifications go to (``sqs_endpoint_url``, ``sqs_queue_url``,
``aws_region``, ``aws_access_key_id``, ``aws_secret_access_key``). Orders
(``POST /_sandbox/orders``) take ``{"shop": sellerId, "lines": [{"sku", "quantity",
"price"?}], "currency"?}``: stock (the DEFAULT fulfillment channel) goes
down and one ORDER_CHANGE message is sent to the seller's queue — unsigned, as Amazon sends it.

Every API call checks ``x-amz-access-token`` (403 ``Unauthorized`` in the SP-API error shape),
validates query and body against the published models in ``../shared/contracts/amazon`` when
they are present (400 ``InvalidInput``), and spends one token from that operation's usage plan
for the seller (429 ``QuotaExceeded`` when empty); responses carry ``x-amzn-RequestId`` and
``x-amzn-RateLimit-Limit``. Feeds advance one state per ``getFeed`` poll (IN_QUEUE →
IN_PROGRESS → DONE) so a test sees the whole state machine without waiting.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fusion.sandbox import _amazon_contract as contract
from fusion.sandbox import _amazon_state as st
from fusion.sandbox._amazon_feeds_orders import FeedsAndOrders
from fusion.sandbox._amazon_http import ApiError, api, marketplace, require_json, sp_error
from fusion.sandbox._amazon_images import fetched_images
from fusion.sandbox.knobs import TokenBucket
from fusion.sandbox.server import SandboxApp, SandboxError

log = logging.getLogger(__name__)

APP_ID = "amzn1.sellerapps.app.fusion-sandbox"
LISTING_INCLUDED = {
    "summaries",
    "attributes",
    "issues",
    "offers",
    "fulfillmentAvailability",
    "procurement",
    "relationships",
    "productTypes",
}


class AmazonSandbox(FeedsAndOrders, SandboxApp):
    platform = "amazon_sc"

    def __init__(self) -> None:
        super().__init__()
        self.sellers: dict[str, st.Seller] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (seller, expiry)
        self._sqs: Any = None
        self._moto: Any = None
        if not contract.available():
            log.warning("amazon sandbox: SP-API contracts absent; request validation is off")

    # -- SandboxApp hooks -----------------------------------------------------------------------

    def routes(self) -> Iterable[Rule]:
        item = "/listings/2021-08-01/items/<seller_id>/<path:sku>"
        return [
            Rule("/auth/o2/token", methods=["POST"], endpoint="lwa_token"),
            Rule(item, methods=["GET"], endpoint="get_listings_item"),
            Rule(item, methods=["PUT"], endpoint="put_listings_item"),
            Rule(item, methods=["PATCH"], endpoint="patch_listings_item"),
            Rule(item, methods=["DELETE"], endpoint="delete_listings_item"),
            Rule(
                "/listings/2021-08-01/items/<seller_id>",
                methods=["GET"],
                endpoint="search_listings_items",
            ),
            Rule("/feeds/2021-06-30/documents", methods=["POST"], endpoint="create_feed_document"),
            Rule(
                "/feeds/2021-06-30/documents/<doc_id>",
                methods=["GET"],
                endpoint="get_feed_document",
            ),
            Rule("/feeds/2021-06-30/feeds", methods=["POST"], endpoint="create_feed"),
            Rule("/feeds/2021-06-30/feeds/<feed_id>", methods=["GET"], endpoint="get_feed"),
            Rule("/orders/v0/orders", methods=["GET"], endpoint="get_orders"),
            Rule("/orders/v0/orders/<order_id>", methods=["GET"], endpoint="get_order"),
            Rule(
                "/orders/v0/orders/<order_id>/orderItems",
                methods=["GET"],
                endpoint="get_order_items",
            ),
            Rule(
                "/orders/v0/orders/<order_id>/shipmentConfirmation",
                methods=["POST"],
                endpoint="confirm_shipment",
            ),
            # The pre-signed "S3" URL a feed document is uploaded to and read from.
            Rule("/tortuga/<doc_id>", methods=["PUT", "GET"], endpoint="document_bytes"),
        ]

    def create_shop(self, data: Mapping[str, Any]) -> dict[str, Any]:
        missing = [
            k for k in ("shop", "client_id", "client_secret", "refresh_token") if not data.get(k)
        ]
        if missing:
            raise SandboxError(f"missing fields: {missing}")
        seller = st.Seller(
            seller_id=str(data["shop"]),
            client_id=str(data["client_id"]),
            client_secret=str(data["client_secret"]),
            refresh_token=str(data["refresh_token"]),
            marketplace_id=str(data.get("marketplace_id") or st.DEFAULT_MARKETPLACE),
            token_ttl_s=float(data.get("token_ttl_s", 3600)),
        )
        sqs = self._sqs_client()
        name = f"fusion-order-change-{seller.seller_id}-{secrets.token_hex(4)}"
        seller.queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        self.sellers[seller.seller_id] = seller
        return {
            "shop": seller.seller_id,
            "marketplace_id": seller.marketplace_id,
            "sqs_endpoint_url": self.sqs_endpoint_url,
            "sqs_queue_url": seller.queue_url,
            "aws_region": "us-east-1",
            # moto accepts any key pair; a real seller's IAM user reads its own queue.
            "aws_access_key_id": "AKIA" + secrets.token_hex(8).upper(),
            "aws_secret_access_key": secrets.token_urlsafe(30),
        }

    def seed_listings(
        self, data: Mapping[str, Any], listings: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """On Amazon a listing is one SKU: each variant becomes a listings item of its own."""
        seller = self.sellers.get(str(data.get("shop")))
        if seller is None:
            raise SandboxError("unknown shop")
        made = []
        for given in listings:
            for variant in given.get("variants") or []:
                sku = str(variant.get("sku") or "")
                if not sku:
                    raise SandboxError("an Amazon listing needs a SKU")
                price = str(variant.get("price", "1.00"))
                offer = {"our_price": [{"schedule": [{"value_with_tax": price}]}]}
                listing = st.Listing(
                    sku=sku,
                    product_type="PRODUCT",
                    attributes={
                        "item_name": [{"value": str(given.get("title") or sku)}],
                        "purchasable_offer": [offer],
                    },
                )
                listing.set_quantity(int(variant.get("quantity", 0)))
                seller.listings[sku] = listing
                made.append({"id": sku})
        return made

    def place_order(self, data: Mapping[str, Any]) -> dict[str, Any]:
        seller = self.sellers.get(str(data.get("shop")))
        if seller is None:
            raise SandboxError("unknown shop")
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines:
            raise SandboxError("lines must be a non-empty list")
        currency = str(data.get("currency", "USD"))
        items: list[dict[str, Any]] = []
        total = Decimal(0)
        for n, line in enumerate(lines, 1):
            try:
                sku, quantity = str(line["sku"]), int(line["quantity"])
                price = Decimal(str(line.get("price", _listed_price(seller, sku))))
            except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
                raise SandboxError(f"bad order line {n}: {exc}") from exc
            listing = seller.listings.get(sku)
            if listing is not None:
                listing.set_quantity(max(0, (listing.quantity() or 0) - quantity))
            total += price * quantity
            items.append(
                {
                    "ASIN": listing.asin if listing else "B000000000",
                    "SellerSKU": sku,
                    "OrderItemId": f"{uuid.uuid4().int % 10**14:014d}",
                    "QuantityOrdered": quantity,
                    "QuantityShipped": 0,
                    "ItemPrice": {"CurrencyCode": currency, "Amount": str(price * quantity)},
                }
            )
        stamp = st.now_iso()
        order_id = str(data.get("order_id") or st.new_order_id())
        order: dict[str, Any] = {
            "AmazonOrderId": order_id,
            "PurchaseDate": stamp,
            "LastUpdateDate": stamp,
            "OrderStatus": "Unshipped",
            "FulfillmentChannel": "MFN",
            "OrderTotal": {"CurrencyCode": currency, "Amount": str(total)},
            "NumberOfItemsShipped": 0,
            "NumberOfItemsUnshipped": sum(i["QuantityOrdered"] for i in items),
            "MarketplaceId": seller.marketplace_id,
            "OrderType": "StandardOrder",
            "items": items,
        }
        seller.orders[order_id] = order
        notification = st.order_change_notification(seller, order, APP_ID)
        self._sqs_client().send_message(
            QueueUrl=seller.queue_url, MessageBody=json.dumps(notification)
        )
        return {
            **st.order_view(order),
            "notification_id": notification["NotificationMetadata"]["NotificationId"],
        }

    def dump_state(self) -> dict[str, Any]:
        return {
            seller_id: {
                "marketplace_id": s.marketplace_id,
                "sqs_queue_url": s.queue_url,
                "tokens_issued": s.tokens_issued,
                "listings": {
                    sku: {
                        "productType": li.product_type,
                        "attributes": li.attributes,
                        "quantity": li.quantity(),
                        "asin": li.asin,
                        "images": li.images,
                    }
                    for sku, li in s.listings.items()
                },
                "feeds": {
                    k: {f: v for f, v in feed.items() if f != "document"}
                    for k, feed in s.feeds.items()
                },
                "orders": {k: st.order_view(o) for k, o in s.orders.items()},
                "shipments": {k: o["shipments"] for k, o in s.orders.items() if "shipments" in o},
            }
            for seller_id, s in self.sellers.items()
        }

    def reset_state(self) -> None:
        self.sellers.clear()
        self.tokens.clear()

    def error_response(self, status: int, message: str) -> Response:
        return sp_error(status, message)

    def close(self) -> None:
        """Stop the SQS (moto) server this sandbox started, if any."""
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
            self._sqs = None

    # -- SQS ------------------------------------------------------------------------------------

    @property
    def sqs_endpoint_url(self) -> str:
        self._sqs_client()
        host, port = self._moto.get_host_and_port()
        return f"http://{host}:{port}"

    def _sqs_client(self) -> Any:
        if self._sqs is None:
            import boto3
            from moto.server import ThreadedMotoServer

            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self._sqs = boto3.client(
                "sqs",
                endpoint_url=f"http://{host}:{port}",
                region_name="us-east-1",
                aws_access_key_id="sandbox",
                aws_secret_access_key="sandbox",  # noqa: S106 - moto accepts any key
            )
        return self._sqs

    # -- auth and quotas ------------------------------------------------------------------------

    def lwa_token(self, request: Request) -> Response:
        """Login with Amazon: exchange a refresh token for a one-hour access token."""
        form = request.form
        seller = next(
            (
                s
                for s in self.sellers.values()
                if secrets.compare_digest(s.refresh_token, form.get("refresh_token", ""))
            ),
            None,
        )
        if form.get("grant_type") != "refresh_token":
            return _lwa_error("unsupported_grant_type", "The grant type is not supported.")
        if seller is None:
            return _lwa_error(
                "invalid_grant", "The request has an invalid grant parameter : refresh_token"
            )
        if form.get("client_id") != seller.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), seller.client_secret
        ):
            return _lwa_error("invalid_client", "Client authentication failed", 401)
        token = "Atza|" + secrets.token_urlsafe(32)
        ttl = seller.token_ttl_s
        with self.lock:
            self.tokens[token] = (seller.seller_id, time.monotonic() + ttl)
            seller.tokens_issued += 1
        body = {
            "access_token": token,
            "refresh_token": seller.refresh_token,
            "token_type": "bearer",
            "expires_in": int(ttl),
        }
        return Response(json.dumps(body), mimetype="application/json")

    def _authenticate(self, request: Request, seller_id: str | None) -> st.Seller:
        token = request.headers.get("x-amz-access-token", "")
        entry = self.tokens.get(token)
        if entry is None:
            raise ApiError(
                403,
                "Access to requested resource is denied.",
                "The access token you provided is revoked, malformed or invalid.",
            )
        owner, expiry = entry
        if time.monotonic() >= expiry:
            raise ApiError(
                403,
                "Access to requested resource is denied.",
                "The access token you provided has expired.",
            )
        if seller_id is not None and seller_id != owner:
            raise ApiError(403, "Access to requested resource is denied.")
        return self.sellers[owner]

    def _spend(self, seller: st.Seller, operation: str) -> float:
        rate, burst = self.knobs.rate_limit or st.USAGE_PLANS[operation]
        bucket = seller.buckets.get(operation)
        if bucket is None:
            bucket = seller.buckets[operation] = TokenBucket(rate, burst)
        elif (bucket.refill, bucket.capacity) != (rate, burst):
            bucket.configure(rate, burst)
        taken, _ = bucket.take(1.0)
        if not taken:
            raise ApiError(429, "You exceeded your quota for the requested resource.", f"{rate:g}")
        return rate

    # -- Listings Items -------------------------------------------------------------------------

    def _listing(self, seller: st.Seller, sku: str) -> st.Listing:
        listing = seller.listings.get(sku)
        if listing is None:
            raise ApiError(404, f"SKU '{sku}' not found in marketplace {seller.marketplace_id}")
        return listing

    @api("getListingsItem")
    def get_listings_item(
        self, request: Request, seller: st.Seller, seller_id: str, sku: str
    ) -> Any:
        marketplace(request, seller)
        included = {v for raw in request.args.getlist("includedData") for v in raw.split(",") if v}
        if included - LISTING_INCLUDED:
            raise ApiError(400, f"Invalid includedData: {sorted(included - LISTING_INCLUDED)}")
        return st.item_view(seller, self._listing(seller, sku), included or {"summaries"})

    @api("putListingsItem")
    def put_listings_item(
        self, request: Request, seller: st.Seller, seller_id: str, sku: str
    ) -> Any:
        marketplace(request, seller)
        body = require_json(request, contract.LISTINGS, "ListingsItemPutRequest")
        missing = [k for k in ("productType", "attributes") if k not in body]
        if missing:  # the model marks both required; keep refusing them when it is absent
            raise ApiError(400, "Request has missing or invalid parameters.", f"missing {missing}")
        issues = st.required_attribute_issues(body["productType"], body["attributes"])
        existing = seller.listings.get(sku)
        images, image_issues = fetched_images(
            body["attributes"], existing.images if existing is not None else {}
        )
        issues += image_issues
        preview = request.args.get("mode") == "VALIDATION_PREVIEW"
        if not issues and not preview:
            listing = st.Listing(sku, body["productType"], dict(body["attributes"]))
            listing.images = images
            if existing is not None:  # a PUT replaces attributes but the ASIN stays
                listing.asin, listing.created = existing.asin, existing.created
            seller.listings[sku] = listing
        return _submission(sku, issues, preview)

    @api("patchListingsItem")
    def patch_listings_item(
        self, request: Request, seller: st.Seller, seller_id: str, sku: str
    ) -> Any:
        marketplace(request, seller)
        body = require_json(request, contract.LISTINGS, "ListingsItemPatchRequest")
        if not body.get("patches"):
            raise ApiError(400, "Request has missing or invalid parameters.", "patches required")
        listing = self._listing(seller, sku)
        preview = request.args.get("mode") == "VALIDATION_PREVIEW"
        # Patched on a copy: a patch whose images cannot be fetched changes nothing.
        target = st.Listing(sku, listing.product_type, dict(listing.attributes))
        issues = st.apply_patches(target, body["patches"])
        if not issues:
            images, issues = fetched_images(target.attributes, listing.images)
        if not issues and not preview:
            listing.attributes, listing.updated = target.attributes, target.updated
            listing.images = images
        return _submission(sku, issues, preview)

    @api("deleteListingsItem")
    def delete_listings_item(
        self, request: Request, seller: st.Seller, seller_id: str, sku: str
    ) -> Any:
        marketplace(request, seller)
        self._listing(seller, sku)
        del seller.listings[sku]
        return _submission(sku, [], False)

    @api("searchListingsItems")
    def search_listings_items(self, request: Request, seller: st.Seller, seller_id: str) -> Any:
        marketplace(request, seller)
        try:
            size = int(request.args.get("pageSize", "10"))
            start = int(request.args.get("pageToken", "0") or 0)
        except ValueError as exc:
            raise ApiError(400, "Invalid pageSize or pageToken.") from exc
        if not 1 <= size <= 20:
            raise ApiError(400, "pageSize must be between 1 and 20.")
        included = {v for raw in request.args.getlist("includedData") for v in raw.split(",") if v}
        skus = sorted(seller.listings)
        page = skus[start : start + size]
        result: dict[str, Any] = {
            "numberOfResults": len(skus),
            "items": [
                st.item_view(seller, seller.listings[s], included or {"summaries"}) for s in page
            ],
        }
        if start + size < len(skus):
            result["pagination"] = {"nextToken": str(start + size)}
        return result


def _listed_price(seller: st.Seller, sku: str) -> str:
    """The listing's own price (its purchasable_offer), for an order that names none."""
    listing = seller.listings.get(sku)
    try:
        offer = listing.attributes["purchasable_offer"][0] if listing else {}
        return str(offer["our_price"][0]["schedule"][0]["value_with_tax"])
    except (KeyError, IndexError, TypeError):
        return "0"


def _submission(sku: str, issues: list[dict[str, Any]], preview: bool) -> dict[str, Any]:
    status = "INVALID" if issues else ("VALID" if preview else "ACCEPTED")
    return {"sku": sku, "status": status, "submissionId": uuid.uuid4().hex, "issues": issues}


def _lwa_error(code: str, description: str, status: int = 400) -> Response:
    return Response(
        json.dumps({"error": code, "error_description": description}),
        status,
        mimetype="application/json",
    )
