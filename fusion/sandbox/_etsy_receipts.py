"""Receipts and orders of the Etsy sandbox (a mixin of EtsySandbox): ``getShopReceipts``,
``getShopReceipt``, ``createReceiptShipment`` (the receipt's tracking, kept under
``shipments``), and orders placed through ``/_sandbox/orders``, which take the stock, make a
paid receipt and send an ``order.paid`` event signed the Standard Webhooks way.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fusion.sandbox._etsy_contract import API, request_schema, schema_problem
from fusion.sandbox._etsy_state import Shop
from fusion.sandbox.server import SandboxError, json_response
from fusion.security.signing import standard_webhooks_sign

if TYPE_CHECKING:
    from fusion.sandbox.server import Delivery

PUBLIC_API = "https://openapi.etsy.com"


class ReceiptsAndOrders:
    """Receipt handlers and the order hook; the sandbox provides the lock, the shops, ids,
    authorisation and webhook delivery."""

    lock: threading.RLock
    shops: dict[int, Shop]
    _ids: Iterator[int]

    if TYPE_CHECKING:

        def _authorise(
            self, request: Request, shop_id: int | None
        ) -> tuple[Shop, dict[str, str]]: ...

        def deliver(
            self, *, url: str, body: bytes, headers: Mapping[str, str], delivery_id: str, topic: str
        ) -> Delivery: ...

    def get_receipts(self, request: Request, shop_id: int) -> Response:
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            try:
                since = int(request.args.get("min_last_modified", 0))
                limit = int(request.args.get("limit", 25))
                offset = int(request.args.get("offset", 0))
            except ValueError:
                return json_response({"error": "parameters must be integers"}, 400, headers)
            if not 1 <= limit <= 100:
                return json_response({"error": "limit must be within 1-100"}, 400, headers)
            chosen = [r for r in shop.receipts if r["update_timestamp"] >= since]
            page = chosen[offset : offset + limit]
        return json_response({"count": len(chosen), "results": page}, 200, headers)

    def get_receipt(self, request: Request, shop_id: int, receipt_id: int) -> Response:
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            receipt = next((r for r in shop.receipts if r["receipt_id"] == receipt_id), None)
        if receipt is None:
            return json_response({"error": f"Receipt {receipt_id} not found"}, 404, headers)
        return json_response(receipt, 200, headers)

    def create_receipt_shipment(self, request: Request, shop_id: int, receipt_id: int) -> Response:
        """``createReceiptShipment``: the body is checked against the contract; tracking code
        and carrier name come together or not at all (then the receipt is only marked
        shipped). The receipt gains the shipment, is shipped and completed."""
        path = f"{API}/shops/{{shop_id}}/receipts/{{receipt_id}}/tracking"
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            receipt = next((r for r in shop.receipts if r["receipt_id"] == receipt_id), None)
            if receipt is None:
                return json_response({"error": f"Receipt {receipt_id} not found"}, 404, headers)
            try:
                data = json.loads(request.get_data() or b"")
            except ValueError:
                return json_response({"error": "body must be JSON"}, 400, headers)
            problem = schema_problem(request_schema(path, "post", "application/json"), data)
            if problem is None and not isinstance(data, dict):
                problem = "body must be a JSON object"
            if problem is None and bool(data.get("tracking_code")) != bool(
                data.get("carrier_name")
            ):
                problem = "tracking_code and carrier_name must be sent together"
            if problem:
                return json_response({"error": problem}, 400, headers)
            stamp = int(time.time())
            if data.get("tracking_code"):
                receipt.setdefault("shipments", []).append(
                    {
                        "receipt_shipping_id": next(self._ids),
                        "shipment_notification_timestamp": stamp,
                        "carrier_name": data["carrier_name"],
                        "tracking_code": data["tracking_code"],
                    }
                )
            receipt.update(
                is_shipped=True, status="completed", update_timestamp=stamp, updated_timestamp=stamp
            )
        return json_response(receipt, 200, headers)

    def place_order(self, data: Mapping[str, Any]) -> dict[str, Any]:
        try:
            shop = self.shops[int(data["shop_id"])]
        except (KeyError, TypeError, ValueError) as exc:
            raise SandboxError("unknown shop_id") from exc
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines:
            raise SandboxError("lines must be a non-empty list of {sku, quantity}")
        by_sku = {
            p["sku"]: (listing_id, p)
            for listing_id, inventory in shop.inventories.items()
            for p in inventory["products"]
            if p.get("sku")
        }
        chosen = []
        for line in lines:
            found, quantity = by_sku.get(line.get("sku")), line.get("quantity")
            if found is None or not isinstance(quantity, int) or quantity <= 0:
                raise SandboxError(f"unknown sku or bad quantity in {line!r}")
            chosen.append((found[0], found[1], quantity))
        now = int(time.time())
        transactions = []
        total = 0
        for listing_id, product, quantity in chosen:
            offering = product["offerings"][0]
            offering["quantity"] = max(0, offering["quantity"] - quantity)
            total += offering["price"]["amount"] * quantity
            transactions.append(
                {
                    "transaction_id": next(self._ids),
                    "listing_id": listing_id,
                    "product_id": product["product_id"],
                    "sku": product["sku"],
                    "quantity": quantity,
                    "price": offering["price"],
                    "title": shop.listings[listing_id]["title"],
                }
            )
            shop.listings[listing_id]["last_modified_timestamp"] = now
        receipt_id = next(self._ids)
        receipt = {
            "receipt_id": receipt_id,
            "receipt_type": 0,
            "seller_user_id": shop.user_id,
            "buyer_user_id": 1,
            "buyer_email": data.get("email", "buyer@example.com"),
            "status": "paid",
            "is_paid": True,
            "is_shipped": False,
            "create_timestamp": now,
            "created_timestamp": now,
            "update_timestamp": now,
            "updated_timestamp": now,
            "grandtotal": {"amount": total, "divisor": 100, "currency_code": "USD"},
            "subtotal": {"amount": total, "divisor": 100, "currency_code": "USD"},
            "total_price": {"amount": total, "divisor": 100, "currency_code": "USD"},
            "transactions": transactions,
        }
        shop.receipts.append(receipt)
        if shop.webhook_url:
            self._send_event(shop, "order.paid", receipt)
        return receipt

    def _send_event(self, shop: Shop, event_type: str, receipt: dict[str, Any]) -> None:
        body = json.dumps(
            {
                "event_type": event_type,
                "resource_url": f"{PUBLIC_API}{API}/shops/{shop.shop_id}/receipts/"
                f"{receipt['receipt_id']}",
                "shop_id": shop.shop_id,
                "receipt": receipt,
            }
        ).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time()))
        self.deliver(
            url=str(shop.webhook_url),
            body=body,
            delivery_id=msg_id,
            topic=event_type,
            headers={
                "webhook-id": msg_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": standard_webhooks_sign(
                    shop.webhook_secret, msg_id, timestamp, body
                ),
            },
        )
