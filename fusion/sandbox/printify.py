"""Printify v1 sandbox: shops, products (create, update, publish, publishing_succeeded/failed),
orders, webhooks signed with ``X-Pfy-Signature: sha256=<hex>``, and Printify's rate limits.

Shops (``POST /_sandbox/shops``) take ``{"token": "...", "shop"?: <int id, else one is
made>, "title"?, "webhook_secret"?, "webhook_url"?, "template"?: true}`` and answer with
``shop_id``; shops sharing a token belong to one account (Printify's limits are per account).
Unless ``template`` is false, the shop starts with one design tagged ``fusion:template`` (the
product a merchant prepares once in Printify's editor, which the plugin builds new products
from). Variants carry ``quantity`` as Printify's product resource shows it; whether the real
update endpoint accepts it is unconfirmed (the sandbox does; orders decrement it). A
``webhook_url`` registers ``order:created`` and ``product:publish:started`` for the shop with
``webhook_secret`` as its signing secret, as ``POST /v1/shops/{id}/webhooks.json`` would.
Orders (``POST /_sandbox/orders``) take ``{"shop" (or "shop_id"): id, "lines": [{"sku",
"quantity"}]}`` and send ``order:created`` whose ``resource.data`` holds only ``shop_id`` and
``status``, as Printify's does. Image uploads (``POST /v1/uploads/images.json``) and the
mockups of the artwork a product's print areas place: ``_printify_uploads``.
Printify ships its own orders: ``POST /_sandbox/shipments``
``{"shop": id, "order_id": ..., "carrier": "usps", "number": "...", "url"?}`` records the
shipment on the order (``shipments``, status ``fulfilled``) and sends ``order:shipment:created``.

Every API call needs ``Authorization: Bearer <token>`` (401) and a ``User-Agent`` (400); errors
use Printify's ``{"status": "error", "code", "message", "errors": {"reason", "code"}}`` shape.
Limits: 600 requests a minute per account (a bucket of 600 refilled at 10/s) and 200 publishes
per 30 minutes; beyond them 429 with ``Retry-After`` and ``X-RateLimit-*`` headers (Printify
runs Laravel, whose throttle sends these; PLATFORMS.md §4.1 marks the exact 429 unconfirmed).
"""

from __future__ import annotations

import functools
import json
import math
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fusion.sandbox._printify_model import (
    CODE_LOCKED,
    GLOBAL_LIMIT,
    PUBLISH_LIMIT,
    TEMPLATE_TAG,
    PrintifyError,
    Shop,
    as_int,
    invalid,
    is_int,
    new_product,
    page,
    parse_variants,
    pfy_error,
    read_body,
    sign,
    stamp,
)
from fusion.sandbox._printify_uploads import MediaLibrary
from fusion.sandbox.knobs import TokenBucket
from fusion.sandbox.server import SandboxApp, SandboxError, json_response, read_json


def api(handler: Callable[..., Any]) -> Callable[..., Response]:
    """Authenticate (Bearer + User-Agent), spend the account's quota, find the shop, and
    render PrintifyError in Printify's shape."""

    @functools.wraps(handler)
    def run(self: PrintifySandbox, request: Request, **values: Any) -> Response:
        try:
            with self.lock:
                token = self._authenticate(request)
                headers = self._spend(token, "global")
                if "shop_id" in values:
                    values["shop"] = self._shop(token, values.pop("shop_id"))
                result = handler(self, request, **values)
        except PrintifyError as exc:
            response = pfy_error(exc.status, exc.message, exc.reason, exc.code)
            if exc.status == 429:
                self.knobs.note_throttled()
                response.headers["Retry-After"] = exc.reason
            return response
        response = Response(json.dumps(result), status=200, mimetype="application/json")
        response.headers.update(headers)
        return response

    return run


class PrintifySandbox(MediaLibrary, SandboxApp):
    platform = "printify"

    def __init__(self) -> None:
        super().__init__()
        self.shops: dict[int, Shop] = {}
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.uploads: dict[str, dict[str, dict[str, Any]]] = {}  # token -> id -> upload

    # -- SandboxApp hooks -----------------------------------------------------------------------

    def routes(self) -> Iterable[Rule]:
        shop = "/v1/shops/<int:shop_id>"
        product = f"{shop}/products/<product_id>"
        return [
            Rule("/v1/shops.json", methods=["GET"], endpoint="list_shops"),
            Rule("/v1/uploads/images.json", methods=["POST"], endpoint="upload_image"),
            Rule(f"{shop}/products.json", methods=["GET"], endpoint="list_products"),
            Rule(f"{shop}/products.json", methods=["POST"], endpoint="create_product"),
            Rule(f"{product}.json", methods=["GET"], endpoint="get_product"),
            Rule(f"{product}.json", methods=["PUT"], endpoint="update_product"),
            Rule(f"{product}.json", methods=["DELETE"], endpoint="delete_product"),
            Rule(f"{product}/publish.json", methods=["POST"], endpoint="publish"),
            Rule(
                f"{product}/publishing_succeeded.json",
                methods=["POST"],
                endpoint="publishing_succeeded",
            ),
            Rule(
                f"{product}/publishing_failed.json", methods=["POST"], endpoint="publishing_failed"
            ),
            Rule(f"{shop}/orders.json", methods=["GET"], endpoint="list_orders"),
            Rule(f"{shop}/orders/<order_id>.json", methods=["GET"], endpoint="get_order"),
            Rule(f"{shop}/webhooks.json", methods=["GET"], endpoint="list_webhooks"),
            Rule(f"{shop}/webhooks.json", methods=["POST"], endpoint="create_webhook"),
            Rule(
                f"{shop}/webhooks/<webhook_id>.json", methods=["DELETE"], endpoint="delete_webhook"
            ),
            Rule("/_sandbox/shipments", methods=["POST"], endpoint="ship_order"),
        ]

    def create_shop(self, data: Mapping[str, Any]) -> dict[str, Any]:
        token = str(data.get("token") or "")
        if not token:
            raise SandboxError("token is required")
        try:
            shop_id = int(data.get("shop") or data.get("shop_id") or 0) or self._new_shop_id()
        except (TypeError, ValueError) as exc:
            raise SandboxError("shop must be an integer id") from exc
        shop = Shop(shop_id, token, str(data.get("title") or f"Shop {shop_id}"))
        if data.get("webhook_url"):
            for topic in ("order:created", "product:publish:started"):
                self._register(shop, topic, str(data["webhook_url"]), data.get("webhook_secret"))
        template = None
        if data.get("template", True):
            template = self._seed_template(shop)
        self.shops[shop_id] = shop
        return {
            "shop": shop_id,
            "shop_id": shop_id,
            "title": shop.title,
            "webhooks": len(shop.webhooks),
            "template_product_id": template,
        }

    def _new_shop_id(self) -> int:
        while True:
            candidate = 1_000_000 + secrets.randbelow(9_000_000)
            if candidate not in self.shops:
                return candidate

    def _seed_template(self, shop: Shop) -> str:
        """The design a merchant prepares once in Printify's editor and tags ``fusion:template``:
        a Bella+Canvas 3001 tee (blueprint 6) by Monster Digital (provider 270), three sizes,
        artwork on the front."""
        ids = [12100, 12101, 12102]
        product = new_product(
            shop,
            {
                "title": "Fusion template",
                "description": "",
                "tags": [TEMPLATE_TAG],
                "blueprint_id": 6,
                "print_provider_id": 270,
                "print_areas": [
                    {
                        "variant_ids": ids,
                        "placeholders": [
                            {
                                "position": "front",
                                "images": [
                                    {
                                        "id": "5d15ca551163cde90d7b2203",
                                        "x": 0.5,
                                        "y": 0.5,
                                        "scale": 1,
                                        "angle": 0,
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
            parse_variants(
                [
                    {"id": i, "price": 2000, "title": size, "sku": f"TEMPLATE-{size}"}
                    for i, size in zip(ids, ("S", "M", "L"), strict=True)
                ]
            ),
        )
        shop.products[product["id"]] = product
        return str(product["id"])

    def seed_listings(
        self, data: Mapping[str, Any], listings: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        shop = self.shops.get(as_int(data.get("shop") or data.get("shop_id")))
        if shop is None:
            raise SandboxError("unknown shop")
        made = []
        for n, given in enumerate(listings):
            variants = given.get("variants") or [{}]
            body = {
                "title": str(given.get("title") or "Product"),
                "description": str(given.get("description") or ""),
                "blueprint_id": 6,
                "print_provider_id": 270,
                "print_areas": [],
            }
            parsed = parse_variants(
                [
                    {
                        "id": 20_000 + 100 * n + i,
                        "sku": v.get("sku"),
                        "price": round(float(v.get("price", 1)) * 100),
                        "quantity": int(v.get("quantity", 0)),
                        "title": str(v.get("title") or v.get("sku") or "Default"),
                    }
                    for i, v in enumerate(variants)
                ]
            )
            product = new_product(shop, body, parsed)
            shop.products[product["id"]] = product
            made.append({"id": product["id"]})
        return made

    def place_order(self, data: Mapping[str, Any]) -> dict[str, Any]:
        shop = self.shops.get(as_int(data.get("shop") or data.get("shop_id")))
        if shop is None:
            raise SandboxError("unknown shop")
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines:
            raise SandboxError("lines must be a non-empty list")
        items = []
        for n, line in enumerate(lines, 1):
            found = self._variant_by_sku(shop, str(line.get("sku")))
            if found is None:
                raise SandboxError(f"line {n}: no variant with sku {line.get('sku')!r}")
            product, variant = found
            quantity = int(line.get("quantity", 1))
            variant["quantity"] = max(0, int(variant.get("quantity", 0)) - quantity)
            items.append(
                {
                    "product_id": product["id"],
                    "variant_id": variant["id"],
                    "quantity": quantity,
                    "print_provider_id": product["print_provider_id"],
                    "cost": variant["cost"],
                    "shipping_cost": 400,
                    "status": "on-hold",
                    "metadata": {
                        "title": product["title"],
                        "price": variant["price"],
                        "variant_label": variant["title"],
                        "sku": variant["sku"],
                    },
                }
            )
        order = {
            "id": uuid.uuid4().hex[:24],
            "status": "on-hold",
            "shipping_method": 1,
            "line_items": items,
            "total_price": sum(i["metadata"]["price"] * i["quantity"] for i in items),
            "total_shipping": 400,
            "total_tax": 0,
            "created_at": stamp(),
            "updated_at": stamp(),
        }
        shop.orders[order["id"]] = order
        self._emit(
            shop,
            "order:created",
            "order",
            order["id"],
            {"shop_id": shop.shop_id, "status": order["status"]},
        )
        return order

    def ship_order(self, request: Request) -> Response:
        """Printify ships an order it printed: the order gains the shipment under
        ``shipments`` (``carrier``, ``number``, ``url``), its lines and status become
        ``fulfilled``, and ``order:shipment:created`` goes out."""
        data = read_json(request)
        with self.lock:
            shop = self.shops.get(as_int(data.get("shop") or data.get("shop_id")))
            order = shop.orders.get(str(data.get("order_id"))) if shop else None
            if shop is None or order is None:
                raise SandboxError("unknown shop or order_id")
            if not data.get("carrier") or not data.get("number"):
                raise SandboxError("carrier and number are required")
            shipment = {
                "carrier": str(data["carrier"]),
                "number": str(data["number"]),
                "url": str(data.get("url") or f"https://track.example/{data['number']}"),
                "delivered_at": None,
            }
            order.setdefault("shipments", []).append(shipment)
            order["status"] = "fulfilled"
            order["updated_at"] = stamp()
            for item in order["line_items"]:
                item["status"] = "fulfilled"
            self._emit(
                shop,
                "order:shipment:created",
                "order",
                order["id"],
                {
                    "shop_id": shop.shop_id,
                    "shipped_at": order["updated_at"],
                    "carrier": {"code": shipment["carrier"], "tracking_number": shipment["number"],
                                "tracking_url": shipment["url"]},
                },
            )  # fmt: skip
        return json_response(order, 201)

    def dump_state(self) -> dict[str, Any]:
        return {
            str(shop.shop_id): {
                "title": shop.title,
                "products": shop.products,
                "orders": shop.orders,
                "webhooks": [
                    {k: v for k, v in w.items() if k != "secret"} for w in shop.webhooks.values()
                ],
                "uploads": list(self.uploads.get(shop.token, {}).values()),
            }
            for shop in self.shops.values()
        }

    def reset_state(self) -> None:
        self.shops.clear()
        self.buckets.clear()
        self.uploads.clear()

    def error_response(self, status: int, message: str) -> Response:
        return pfy_error(status, message)

    # -- auth, quotas, webhooks -----------------------------------------------------------------

    def _authenticate(self, request: Request) -> str:
        if not request.headers.get("User-Agent"):
            raise PrintifyError(400, "User-Agent header is required.")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not any(
            secrets.compare_digest(token, s.token) for s in self.shops.values()
        ):
            raise PrintifyError(401, "Unauthenticated.")
        return token

    def _shop(self, token: str, shop_id: int) -> Shop:
        shop = self.shops.get(shop_id)
        if shop is None or shop.token != token:
            raise PrintifyError(404, "Shop not found.")
        return shop

    def _spend(self, token: str, kind: str) -> dict[str, str]:
        rate, capacity = (
            (self.knobs.rate_limit or GLOBAL_LIMIT) if kind == "global" else PUBLISH_LIMIT
        )
        bucket = self.buckets.get((token, kind))
        if bucket is None:
            bucket = self.buckets[(token, kind)] = TokenBucket(rate, capacity)
        elif (bucket.refill, bucket.capacity) != (rate, capacity):
            bucket.configure(rate, capacity)
        taken, level = bucket.take(1.0)
        if not taken:
            wait = bucket.wait_s(1.0)
            raise PrintifyError(
                429,
                "Too Many Attempts.",
                str(max(1, math.ceil(wait))) if math.isfinite(wait) else "60",
            )
        return {"X-RateLimit-Limit": f"{capacity:g}", "X-RateLimit-Remaining": str(int(level))}

    def _register(self, shop: Shop, topic: str, url: str, secret: Any) -> dict[str, Any]:
        hook: dict[str, Any] = {
            "id": uuid.uuid4().hex[:24],
            "topic": topic,
            "url": url,
            "shop_id": shop.shop_id,
            "secret": str(secret) if secret else None,
        }
        shop.webhooks[hook["id"]] = hook
        return hook

    def _emit(self, shop: Shop, topic: str, kind: str, resource_id: str, data: dict) -> None:
        for hook in shop.webhooks.values():
            if hook["topic"] != topic:
                continue
            delivery_id = str(uuid.uuid4())
            event = {
                "id": delivery_id,
                "type": topic,
                "created_at": stamp(),
                "resource": {"id": resource_id, "type": kind, "data": data},
            }
            body = json.dumps(event).encode()
            headers = {"X-Pfy-Signature": sign(hook["secret"], body)} if hook["secret"] else {}
            self.deliver(
                url=hook["url"], body=body, headers=headers, delivery_id=delivery_id, topic=topic
            )

    def _variant_by_sku(self, shop: Shop, sku: str) -> tuple[dict, dict] | None:
        for product in shop.products.values():
            for variant in product["variants"]:
                if variant["sku"] == sku:
                    return product, variant
        return None

    def _product(self, shop: Shop, product_id: str) -> dict[str, Any]:
        product = shop.products.get(product_id)
        if product is None:
            raise PrintifyError(404, "Product not found.")
        return product

    # -- shops and products ---------------------------------------------------------------------

    @api
    def list_shops(self, request: Request) -> Any:
        token = request.headers["Authorization"].partition(" ")[2]
        return [
            {"id": s.shop_id, "title": s.title, "sales_channel": "custom_integration"}
            for s in self.shops.values()
            if s.token == token
        ]

    @api
    def list_products(self, request: Request, shop: Shop) -> Any:
        return page(request, list(shop.products.values()))

    @api
    def get_product(self, request: Request, shop: Shop, product_id: str) -> Any:
        return self._product(shop, product_id)

    @api
    def create_product(self, request: Request, shop: Shop) -> Any:
        body = read_body(request)
        for name in ("title", "blueprint_id", "print_provider_id", "variants", "print_areas"):
            if name not in body:
                raise invalid(f"The {name} field is required.")
        if not is_int(body["blueprint_id"]) or not is_int(body["print_provider_id"]):
            raise invalid("blueprint_id and print_provider_id must be integers.")
        if not isinstance(body["print_areas"], list) or not body["print_areas"]:
            raise invalid("The print_areas field must be a non-empty array.")
        variants = parse_variants(body["variants"])
        ids = [v["id"] for v in variants]
        if len(set(ids)) != len(ids):
            raise invalid("Variant ids must be unique.")
        product = new_product(shop, body, variants)
        self._mockups(shop.token, product)
        shop.products[product["id"]] = product
        return product

    @api
    def update_product(self, request: Request, shop: Shop, product_id: str) -> Any:
        product = self._product(shop, product_id)
        if product["is_locked"]:
            raise PrintifyError(
                400, "Product is locked.", "Product is being published", CODE_LOCKED
            )
        body = read_body(request)
        for name in ("title", "description"):
            if name in body:
                product[name] = str(body[name])
        if "tags" in body:
            product["tags"] = [str(t) for t in body["tags"]]
        if "print_areas" in body:
            if not isinstance(body["print_areas"], list) or not body["print_areas"]:
                raise invalid("The print_areas field must be a non-empty array.")
            product["print_areas"] = body["print_areas"]
            self._mockups(shop.token, product)
        if "variants" in body:
            by_id = {v["id"]: v for v in product["variants"]}
            for change in parse_variants(body["variants"], partial=True):
                variant = by_id.get(change["id"])
                if variant is None:
                    raise invalid(f"Variant {change['id']} is not part of this product.")
                variant.update(
                    {
                        k: v
                        for k, v in change.items()
                        if k in ("price", "is_enabled", "sku", "quantity")
                    }
                )
        product["updated_at"] = stamp()
        return product

    @api
    def upload_image(self, request: Request) -> Any:
        return self._upload(request, request.headers["Authorization"].partition(" ")[2])

    @api
    def delete_product(self, request: Request, shop: Shop, product_id: str) -> Any:
        self._product(shop, product_id)
        del shop.products[product_id]
        return {}

    @api
    def publish(self, request: Request, shop: Shop, product_id: str) -> Any:
        product = self._product(shop, product_id)
        token = request.headers["Authorization"].partition(" ")[2]
        self._spend(token, "publish")
        body = read_body(request)
        flags = ("title", "description", "images", "variants", "tags")
        if any(not isinstance(body.get(f), bool) for f in flags):
            raise invalid(f"Publish needs boolean {', '.join(flags)}.")
        product["is_locked"] = True
        details = {k: v for k, v in body.items() if isinstance(v, bool)}
        self._emit(
            shop,
            "product:publish:started",
            "product",
            product_id,
            {
                "shop_id": shop.shop_id,
                "publish_details": details,
                "action": "update" if product["external"] else "create",
                "out_of_stock_publishing": 0,
            },
        )
        return {}

    @api
    def publishing_succeeded(self, request: Request, shop: Shop, product_id: str) -> Any:
        product = self._product(shop, product_id)
        external = read_body(request).get("external")
        if not isinstance(external, dict) or not external.get("id") or not external.get("handle"):
            raise invalid("external.id and external.handle are required.")
        product.update(
            is_locked=False,
            visible=True,
            updated_at=stamp(),
            external={"id": str(external["id"]), "handle": str(external["handle"])},
        )
        return {}

    @api
    def publishing_failed(self, request: Request, shop: Shop, product_id: str) -> Any:
        product = self._product(shop, product_id)
        if not read_body(request).get("reason"):
            raise invalid("The reason field is required.")
        product.update(is_locked=False, updated_at=stamp())
        return {}

    # -- orders and webhooks --------------------------------------------------------------------

    @api
    def list_orders(self, request: Request, shop: Shop) -> Any:
        newest_first = sorted(shop.orders.values(), key=lambda o: o["created_at"], reverse=True)
        status = request.args.get("status")
        return page(request, [o for o in newest_first if not status or o["status"] == status])

    @api
    def get_order(self, request: Request, shop: Shop, order_id: str) -> Any:
        order = shop.orders.get(order_id)
        if order is None:
            raise PrintifyError(404, "Order not found.")
        return order

    @api
    def list_webhooks(self, request: Request, shop: Shop) -> Any:
        return [{k: v for k, v in w.items() if k != "secret"} for w in shop.webhooks.values()]

    @api
    def create_webhook(self, request: Request, shop: Shop) -> Any:
        body = read_body(request)
        if not body.get("topic") or not body.get("url"):
            raise invalid("The topic and url fields are required.")
        return self._register(shop, str(body["topic"]), str(body["url"]), body.get("secret"))

    @api
    def delete_webhook(self, request: Request, shop: Shop, webhook_id: str) -> Any:
        if shop.webhooks.pop(webhook_id, None) is None:
            raise PrintifyError(404, "Webhook not found.")
        return {"id": webhook_id}
