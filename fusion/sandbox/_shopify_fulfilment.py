"""Fulfilment and refunds in the Shopify sandbox (a mixin of ShopifySandbox).

- ``order(id:)`` answers the order with its ``fulfillmentOrders`` (one per order, at the
  sandbox's one location, a line item per order line with ``remainingQuantity``) and its
  ``fulfillments`` (each with ``trackingInfo``).
- ``fulfillmentCreate`` fulfils fulfillment order line items (all remaining of a fulfillment
  order when it names none), refusing with Shopify's userErrors an unknown fulfillment order
  or line item, fulfillment orders of different orders, and a quantity past what remains. The
  order's ``displayFulfillmentStatus`` (and the REST ``fulfillment_status``) follow.
- Control: ``POST /_sandbox/refunds`` ``{"shop": ..., "order_id": <id or gid>, "lines":
  [{"sku": ..., "quantity": 1}], "restock_type": "return"}`` refunds lines (never past what
  the line has left unrefunded) and sends ``refunds/create`` with ``refund_line_items``;
  ``POST /_sandbox/fulfillments`` ``{"shop": ..., "order_id": ...}`` fulfils everything that
  remains without tracking, as a merchant would in the Shopify admin. Both show in the
  order's state (``fulfillments``, ``refunds``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fusion.sandbox._shopify_state import ResolveContext, Shop, connection, now, user_error
from fusion.sandbox.server import SandboxError, json_response, read_json

LINE_FIELDS = ["fulfillment", "lineItemsByFulfillmentOrder"]


class Fulfilments:
    """Order and fulfillment resolvers and the refund hooks; the sandbox provides the lock,
    the shops, ids and webhook delivery."""

    lock: threading.RLock
    shops: dict[str, Shop]
    _ids: Iterator[int]

    if TYPE_CHECKING:

        def _gid(self, kind: str) -> str: ...

        def send_webhooks(self, shop: Shop, topic: str, payload: Mapping[str, Any]) -> None: ...

    # -- GraphQL --------------------------------------------------------------------------------

    def _resolve_order(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        order = next((o for o in ctx.shop.orders if o["graphql"]["id"] == args.get("id")), None)
        if order is None:
            return None
        held = self._fulfilment_state(order)
        return {
            **order["graphql"],
            "fulfillments": held["fulfillments"],
            "fulfillmentOrders": connection(
                [
                    {**fo, "lineItems": connection(fo["lineItems"])}
                    for fo in held["fulfillmentOrders"]
                ]
            ),
        }

    def _resolve_fulfillmentCreate(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        groups = (args.get("fulfillment") or {}).get("lineItemsByFulfillmentOrder") or []
        if not groups:
            return _refused(LINE_FIELDS, "Line items by fulfillment order must not be empty.")
        owner: dict[str, Any] | None = None
        plan: list[tuple[dict[str, Any], dict[str, Any], int]] = []
        for n, group in enumerate(groups):
            found = self._fulfillment_order(ctx.shop, str(group.get("fulfillmentOrderId")))
            if found is None:
                return _refused([*LINE_FIELDS, str(n)], "Fulfillment order does not exist.")
            order, fulfillment_order = found
            if owner is not None and order is not owner:
                return _refused(
                    LINE_FIELDS, "All fulfillment orders must belong to the same order."
                )
            owner = order
            items = group.get("fulfillmentOrderLineItems") or [
                {"id": li["id"], "quantity": li["remainingQuantity"]}
                for li in fulfillment_order["lineItems"]
                if li["remainingQuantity"] > 0
            ]
            for item in items:
                line = next(
                    (li for li in fulfillment_order["lineItems"] if li["id"] == item.get("id")),
                    None,
                )
                if line is None:
                    return _refused(
                        [*LINE_FIELDS, str(n)], "Fulfillment order line item does not exist."
                    )
                quantity = int(item.get("quantity") or 0)
                if not 0 < quantity <= line["remainingQuantity"]:
                    return _refused(
                        LINE_FIELDS, "Invalid fulfillment order line item quantity requested."
                    )
                plan.append((fulfillment_order, line, quantity))
        if owner is None or not plan:
            return _refused(LINE_FIELDS, "The fulfillment orders have nothing left to fulfill.")
        tracking = (args.get("fulfillment") or {}).get("trackingInfo") or {}
        made = self._fulfil(owner, plan, tracking)
        return {"fulfillment": made, "userErrors": []}

    # -- control hooks --------------------------------------------------------------------------

    def refund_lines(self, request: Request) -> Response:
        data = read_json(request)
        with self.lock:
            shop, order = self._control_order(data)
            rest = order["rest"]
            restock_type = str(data.get("restock_type") or "return")
            refunded: dict[int, int] = {}  # line item id -> units refunded so far
            for refund in order.get("refunds", []):
                for r in refund["refund_line_items"]:
                    refunded[r["line_item_id"]] = refunded.get(r["line_item_id"], 0) + r["quantity"]
            refund_lines = []
            for line in data.get("lines") or []:
                item = next((i for i in rest["line_items"] if i["sku"] == line.get("sku")), None)
                quantity = line.get("quantity")
                if item is None or not isinstance(quantity, int) or quantity <= 0:
                    raise SandboxError(f"unknown sku or bad quantity in {line!r}")
                if quantity > item["quantity"] - refunded.get(item["id"], 0):
                    raise SandboxError(f"line {item['sku']} has fewer units left to refund")
                refund_lines.append(
                    {
                        "id": next(self._ids),
                        "line_item_id": item["id"],
                        "location_id": 1,
                        "quantity": quantity,
                        "restock_type": restock_type,
                        "subtotal": f"{Decimal(item['price']) * quantity:.2f}",
                        "total_tax": "0.00",
                        "line_item": item,
                    }
                )
            if not refund_lines:
                raise SandboxError("lines must be a non-empty list of {sku, quantity}")
            refund = {
                "id": next(self._ids),
                "order_id": rest["id"],
                "admin_graphql_api_id": self._gid("Refund"),
                "created_at": now(),
                "processed_at": now(),
                "note": data.get("note"),
                "restock": restock_type != "no_restock",
                "refund_line_items": refund_lines,
                "transactions": [],
            }
            order.setdefault("refunds", []).append(refund)
            self.send_webhooks(shop, "refunds/create", refund)
        return json_response(refund, 201)

    def fulfil_in_admin(self, request: Request) -> Response:
        data = read_json(request)
        with self.lock:
            _, order = self._control_order(data)
            held = self._fulfilment_state(order)
            plan = [
                (fo, li, li["remainingQuantity"])
                for fo in held["fulfillmentOrders"]
                for li in fo["lineItems"]
                if li["remainingQuantity"] > 0
            ]
            if not plan:
                raise SandboxError("the order has nothing left to fulfil")
            made = self._fulfil(order, plan, {})
        return json_response(made, 201)

    # -- state ----------------------------------------------------------------------------------

    def _control_order(self, data: Mapping[str, Any]) -> tuple[Shop, dict[str, Any]]:
        shop = self.shops.get(str(data.get("shop")))
        if shop is None:
            raise SandboxError("unknown shop")
        wanted = str(data.get("order_id"))
        for order in shop.orders:
            if wanted in (str(order["rest"]["id"]), order["graphql"]["id"]):
                return shop, order
        raise SandboxError("unknown order_id")

    def _fulfilment_state(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order's fulfillment order and fulfillments, made on first use."""
        if "fulfillmentOrders" not in order:
            order["fulfillmentOrders"] = [
                {
                    "id": self._gid("FulfillmentOrder"),
                    "status": "OPEN",
                    "lineItems": [
                        {
                            "id": self._gid("FulfillmentOrderLineItem"),
                            "totalQuantity": line["quantity"],
                            "remainingQuantity": line["quantity"],
                            "sku": line["sku"],
                            "lineItem": {"id": line["id"], "sku": line["sku"]},
                        }
                        for line in order["graphql"]["lineItems"]["nodes"]
                    ],
                }
            ]
            order["fulfillments"] = []
        return order

    def _fulfillment_order(
        self, shop: Shop, fulfillment_order_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for order in shop.orders:
            for fo in self._fulfilment_state(order)["fulfillmentOrders"]:
                if fo["id"] == fulfillment_order_id:
                    return order, fo
        return None

    def _fulfil(
        self,
        order: dict[str, Any],
        plan: list[tuple[dict[str, Any], dict[str, Any], int]],
        tracking: Mapping[str, Any],
    ) -> dict[str, Any]:
        for fo, line, quantity in plan:
            line["remainingQuantity"] -= quantity
            fo["status"] = (
                "CLOSED" if all(li["remainingQuantity"] == 0 for li in fo["lineItems"])
                else "IN_PROGRESS"
            )  # fmt: skip
        info = [
            {"company": tracking.get("company"), "number": tracking.get("number"),
             "url": tracking.get("url")}
        ] if tracking.get("number") else []  # fmt: skip
        made = {
            "id": self._gid("Fulfillment"),
            "status": "SUCCESS",
            "createdAt": now(),
            "trackingInfo": info,
            "lineItems": [
                {"lineItem": {"id": line["lineItem"]["id"]}, "sku": line["sku"], "quantity": q}
                for _, line, q in plan
            ],
        }
        order["fulfillments"].append(made)
        left = sum(li["remainingQuantity"] for fo in order["fulfillmentOrders"]
                   for li in fo["lineItems"])  # fmt: skip
        order["graphql"]["displayFulfillmentStatus"] = (
            "PARTIALLY_FULFILLED" if left else "FULFILLED"
        )
        order["rest"]["fulfillment_status"] = "partial" if left else "fulfilled"
        return made


def _refused(field: list[str], message: str) -> dict[str, Any]:
    return {"fulfillment": None, "userErrors": [user_error(field, message)]}
