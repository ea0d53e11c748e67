"""Feeds API 2021-06-30 and Orders API v0 of the Amazon sandbox (a mixin of AmazonSandbox).

A feed document is uploaded to a pre-signed ``/tortuga/<id>`` URL (no SP-API token, only the
signature the URL carries); a feed advances one state per ``getFeed`` poll and, when done,
leaves a processing report document. Orders are those placed through ``/_sandbox/orders``;
``confirmShipment`` ships their items.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from fusion.sandbox import _amazon_contract as contract
from fusion.sandbox import _amazon_state as st
from fusion.sandbox._amazon_http import ApiError, api, marketplace, require_json
from fusion.sandbox.knobs import Knobs


class FeedsAndOrders:
    """Feeds and Orders handlers; the sandbox provides the lock and the sellers."""

    lock: threading.RLock
    sellers: dict[str, st.Seller]
    knobs: Knobs

    # -- Feeds ----------------------------------------------------------------------------------

    @api("createFeedDocument")
    def create_feed_document(self, request: Request, seller: st.Seller) -> Any:
        body = require_json(request, contract.FEEDS, "CreateFeedDocumentSpecification")
        doc_id = "amzn1.tortuga.4." + uuid.uuid4().hex
        signature = secrets.token_hex(16)
        seller.documents[doc_id] = {
            "contentType": body["contentType"],
            "content": None,
            "signature": signature,
        }
        return 201, {"feedDocumentId": doc_id, "url": self._presigned(request, doc_id, signature)}

    @api("getFeedDocument")
    def get_feed_document(self, request: Request, seller: st.Seller, doc_id: str) -> Any:
        document = seller.documents.get(doc_id)
        if document is None:
            raise ApiError(404, f"Feed document {doc_id} not found.")
        return {
            "feedDocumentId": doc_id,
            "url": self._presigned(request, doc_id, document["signature"]),
        }

    def document_bytes(self, request: Request, doc_id: str) -> Response:
        """The pre-signed URL: no SP-API token, only the signature the URL carries."""
        with self.lock:
            document = next(
                (s.documents[doc_id] for s in self.sellers.values() if doc_id in s.documents), None
            )
            if document is None or not secrets.compare_digest(
                request.args.get("X-Amz-Signature", ""), document["signature"]
            ):
                return Response(
                    _s3_error("AccessDenied", "Access Denied"), 403, mimetype="application/xml"
                )
            if request.method == "PUT":
                if request.content_type != document["contentType"]:
                    return Response(
                        _s3_error(
                            "SignatureDoesNotMatch", "Content-Type differs from the signed one"
                        ),
                        403,
                        mimetype="application/xml",
                    )
                document["content"] = request.get_data()
                # S3's ETag is the MD5 of the object; not a security use.
                etag = hashlib.md5(document["content"]).hexdigest()  # noqa: S324
                return Response(b"", 200, headers={"ETag": etag})
            if document["content"] is None:
                return Response(
                    _s3_error("NoSuchKey", "The specified key does not exist."),
                    404,
                    mimetype="application/xml",
                )
            return Response(document["content"], 200, mimetype=document["contentType"])

    @api("createFeed")
    def create_feed(self, request: Request, seller: st.Seller) -> Any:
        body = require_json(request, contract.FEEDS, "CreateFeedSpecification")
        document = seller.documents.get(body["inputFeedDocumentId"])
        if document is None:
            raise ApiError(400, "Invalid inputFeedDocumentId.")
        if body["feedType"] != "JSON_LISTINGS_FEED":
            raise ApiError(400, f"Feed type {body['feedType']} is not supported by the sandbox.")
        feed_id = str(50000000000 + len(seller.feeds) + 1 + secrets.randbelow(10**9))
        seller.feeds[feed_id] = {
            "feedId": feed_id,
            "feedType": body["feedType"],
            "marketplaceIds": body["marketplaceIds"],
            "createdTime": st.now_iso(),
            "processingStatus": "IN_QUEUE",
            "inputFeedDocumentId": body["inputFeedDocumentId"],
        }
        return 202, {"feedId": feed_id}

    @api("getFeed")
    def get_feed(self, request: Request, seller: st.Seller, feed_id: str) -> Any:
        feed = seller.feeds.get(feed_id)
        if feed is None:
            raise ApiError(404, f"Feed {feed_id} not found.")
        if feed["processingStatus"] == "IN_QUEUE":
            feed["processingStatus"] = "IN_PROGRESS"
            feed["processingStartTime"] = st.now_iso()
        elif feed["processingStatus"] == "IN_PROGRESS":
            self._finish_feed(seller, feed)
        return {k: v for k, v in feed.items() if k != "inputFeedDocumentId"}

    def _finish_feed(self, seller: st.Seller, feed: dict[str, Any]) -> None:
        feed["processingEndTime"] = st.now_iso()
        content = seller.documents[feed["inputFeedDocumentId"]]["content"]
        try:
            document = json.loads(content or b"")
        except ValueError:
            document = None
        errors = (
            contract.schema_errors(contract.LISTINGS_FEED, document)
            if document is not None
            else ["not JSON"]
        )
        if document is None or errors or document["header"]["sellerId"] != seller.seller_id:
            # Amazon answers a feed it cannot parse with FATAL and a report saying why.
            feed["processingStatus"] = "FATAL"
            report: dict[str, Any] = {
                "header": {
                    "sellerId": seller.seller_id,
                    "version": "2.0",
                    "feedId": feed["feedId"],
                },
                "issues": [
                    {
                        "code": "4000004",
                        "severity": "ERROR",
                        "message": ("; ".join(errors[:3]) or "sellerId mismatch")[:500],
                    }
                ],
                "summary": {
                    "errors": 1,
                    "warnings": 0,
                    "messagesProcessed": 0,
                    "messagesAccepted": 0,
                    "messagesInvalid": 0,
                },
            }
        else:
            feed["processingStatus"] = "DONE"
            report = st.process_feed(seller, feed, document, refuse=self.knobs.refuse_skus)
        result_id = "amzn1.tortuga.4." + uuid.uuid4().hex
        seller.documents[result_id] = {
            "contentType": "application/json",
            "content": json.dumps(report).encode(),
            "signature": secrets.token_hex(16),
        }
        feed["resultFeedDocumentId"] = result_id

    def _presigned(self, request: Request, doc_id: str, signature: str) -> str:
        return f"{request.host_url}tortuga/{doc_id}?X-Amz-Expires=300&X-Amz-Signature={signature}"

    # -- Orders ---------------------------------------------------------------------------------

    @api("getOrders")
    def get_orders(self, request: Request, seller: st.Seller) -> Any:
        marketplace(request, seller, "MarketplaceIds")
        created, updated = request.args.get("CreatedAfter"), request.args.get("LastUpdatedAfter")
        if bool(created) == bool(updated):
            raise ApiError(400, "Exactly one of CreatedAfter and LastUpdatedAfter is required.")
        try:
            since = st.parse_iso(created or updated or "")
            size = int(request.args.get("MaxResultsPerPage", "100"))
        except ValueError as exc:
            raise ApiError(400, "Invalid date or MaxResultsPerPage.", str(exc)) from exc
        key = "PurchaseDate" if created else "LastUpdateDate"
        matching = sorted(
            (o for o in seller.orders.values() if st.parse_iso(o[key]) > since),
            key=lambda o: o[key],
        )
        start = int(request.args.get("NextToken", "0") or 0)
        page = matching[start : start + size]
        payload: dict[str, Any] = {"Orders": [st.order_view(o) for o in page]}
        if start + size < len(matching):
            payload["NextToken"] = str(start + size)
        if updated:
            payload["LastUpdatedBefore"] = st.now_iso()
        else:
            payload["CreatedBefore"] = st.now_iso()
        return {"payload": payload}

    @api("getOrder")
    def get_order(self, request: Request, seller: st.Seller, order_id: str) -> Any:
        order = seller.orders.get(order_id)
        if order is None:
            raise ApiError(404, f"Order {order_id} not found.")
        return {"payload": st.order_view(order)}

    @api("getOrderItems")
    def get_order_items(self, request: Request, seller: st.Seller, order_id: str) -> Any:
        order = seller.orders.get(order_id)
        if order is None:
            raise ApiError(404, f"Order {order_id} not found.")
        return {"payload": {"AmazonOrderId": order_id, "OrderItems": order["items"]}}

    @api("confirmShipment")
    def confirm_shipment(self, request: Request, seller: st.Seller, order_id: str) -> Any:
        """``confirmShipment``: the body is checked against ``ConfirmShipmentRequest``; each
        order item's quantity must be within what is unshipped of it. The items' shipped
        counts and the order's status follow; the package is kept under ``shipments``."""
        order = seller.orders.get(order_id)
        if order is None:
            raise ApiError(404, f"Order {order_id} not found.")
        body = require_json(request, contract.ORDERS, "ConfirmShipmentRequest")
        if body.get("marketplaceId") != seller.marketplace_id:
            raise ApiError(400, f"Invalid marketplace identifier: {body.get('marketplaceId')}.")
        package = body.get("packageDetail") or {}
        items = {str(i["OrderItemId"]): i for i in order["items"]}
        wanted = [
            (str(i.get("orderItemId")), i.get("quantity")) for i in package.get("orderItems") or []
        ]
        for item_id, quantity in wanted:
            item = items.get(item_id)
            if item is None:
                raise ApiError(400, f"Invalid order item id {item_id}.")
            unshipped = item["QuantityOrdered"] - item["QuantityShipped"]
            if not isinstance(quantity, int) or not 0 < quantity <= unshipped:
                raise ApiError(
                    400,
                    f"Quantity {quantity} of order item {item_id} exceeds the {unshipped} "
                    "unshipped.",
                )
        for item_id, quantity in wanted:
            items[item_id]["QuantityShipped"] += quantity
        shipped = sum(i["QuantityShipped"] for i in order["items"])
        ordered = sum(i["QuantityOrdered"] for i in order["items"])
        order.update(
            NumberOfItemsShipped=shipped,
            NumberOfItemsUnshipped=ordered - shipped,
            OrderStatus="Shipped" if shipped == ordered else "PartiallyShipped",
            LastUpdateDate=st.now_iso(),
        )
        order.setdefault("shipments", []).append(package)
        return 204, None


def _s3_error(code: str, message: str) -> bytes:
    xml = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
    return (xml + f"<Message>{message}</Message></Error>").encode()
