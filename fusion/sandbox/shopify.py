"""Shopify Admin GraphQL sandbox (API 2026-07 shapes).

- ``POST /admin/api/<version>/graphql.json`` with ``X-Shopify-Access-Token``; the shop is the
  one whose token it is (a real shop is its host; one sandbox host serves many shops). A bad
  token is 401 ``{"errors": "[API] Invalid API key or access token ..."}``.
- Cost-based leaky bucket per shop: 1000 points, 50 restored per second by default (the knob
  ``rate_limit`` = ``[restore per second, maximum]`` overrides it). Every answer carries
  ``extensions.cost`` with ``throttleStatus``; a query costing more than is available gets
  HTTP 200 with a ``THROTTLED`` error, one over 1000 points ``MAX_COST_EXCEEDED``.
- Documents are validated against ``shopify/admin-graphql-2026-07.graphql`` when the contract
  is present (see ``_shopify_graphql``). Each shop counts the Admin API calls it answered by
  root field (``calls`` in ``/_sandbox/state``: ``{"inventorySetQuantities": 3, ...}``).
- Modelled: ``locations``, ``products``/``product``, ``productVariants(query: "sku:...")``,
  ``orders(query: "updated_at:>'...'")``, ``productSet`` (create/update/upsert by id or handle;
  variants matched by id, else by option values; omitted variants deleted), ``productDelete``,
  ``inventorySetQuantities`` (``@idempotent`` and ``changeFromQuantity`` mandatory as of
  2026-04), ``stagedUploadsCreate`` (``BULK_MUTATION_VARIABLES``) with the upload target at
  ``POST /_staged_uploads`` (and ``IMAGE`` for a product's ``files``: ``_shopify_media``),
  ``bulkOperationRunMutation`` run in a background thread, results at
  ``GET /_bulk_results/<n>.jsonl``, ``currentBulkOperation``/``bulkOperation`` polling, and
  ``webhookSubscriptions``/``webhookSubscriptionCreate`` (``_shopify_webhooks``), ``order(id:)``
  with its fulfillment orders and fulfillments, ``fulfillmentCreate``, and refunds
  (``_shopify_fulfilment``).

Control bodies: ``POST /_sandbox/shops`` ``{"shop": "demo.myshopify.com", "token": "...",
"webhook_secret": "...", "webhook_url": "http://..." (optional)}``; ``POST /_sandbox/orders``
``{"shop": "demo.myshopify.com", "lines": [{"sku": "A-1", "quantity": 1}]}`` sends
``orders/create`` signed with ``X-Shopify-Hmac-SHA256`` to the ``webhook_url`` and to every
ORDERS_CREATE subscription.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import count
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fusion.sandbox._shopify_fulfilment import Fulfilments
from fusion.sandbox._shopify_graphql import (
    MAX_QUERY_COST,
    Document,
    GraphQLRequestError,
    contract_schema,
)
from fusion.sandbox._shopify_inventory import InventoryAndBulk
from fusion.sandbox._shopify_media import ProductMedia
from fusion.sandbox._shopify_state import (
    DEFAULT_BUCKET,
    LOCATION_ID,
    ResolveContext,
    Shop,
    TopLevelError,
    check_product_input,
    connection,
    handleize,
    now,
    option_key,
    order_payloads,
    paginate,
    parse_time,
    user_error,
)
from fusion.sandbox._shopify_webhooks import WebhookSubscriptions
from fusion.sandbox.knobs import TokenBucket
from fusion.sandbox.server import SandboxApp, SandboxError, json_response

_VERSION = re.compile(r"^\d{4}-\d{2}$|^unstable$")


class ShopifySandbox(InventoryAndBulk, ProductMedia, WebhookSubscriptions, Fulfilments, SandboxApp):
    platform = "shopify"

    def __init__(self) -> None:
        super().__init__()
        self.schema = contract_schema()
        self.shops: dict[str, Shop] = {}
        self._ids = count(1001)
        self._bucket_shape: tuple[float, float] = DEFAULT_BUCKET

    def routes(self) -> Iterable[Rule]:
        return [
            Rule("/admin/api/<version>/graphql.json", methods=["POST"], endpoint="graphql"),
            Rule("/_staged_uploads", methods=["POST"], endpoint="staged_upload"),
            Rule("/_bulk_results/<name>", methods=["GET"], endpoint="bulk_result"),
            Rule("/_sandbox/refunds", methods=["POST"], endpoint="refund_lines"),
            Rule("/_sandbox/fulfillments", methods=["POST"], endpoint="fulfil_in_admin"),
        ]

    def _gid(self, kind: str) -> str:
        return f"gid://shopify/{kind}/{next(self._ids)}"

    # -- control hooks --------------------------------------------------------------------------

    def create_shop(self, data: Mapping[str, Any]) -> dict[str, Any]:
        domain, token, secret = data.get("shop"), data.get("token"), data.get("webhook_secret")
        if not (isinstance(domain, str) and isinstance(token, str) and isinstance(secret, str)):
            raise SandboxError("shop, token and webhook_secret are required strings")
        if any(s.token == token for s in self.shops.values() if s.domain != domain):
            raise SandboxError("token already belongs to another shop")
        refill, capacity = self.knobs.rate_limit or DEFAULT_BUCKET
        self.shops[domain] = Shop(
            domain=domain,
            token=token,
            webhook_secret=secret,
            webhook_url=data.get("webhook_url"),
            bucket=TokenBucket(refill, capacity),
        )
        return {"shop": domain, "location_id": LOCATION_ID}

    def reset_state(self) -> None:
        self.shops.clear()

    def dump_state(self) -> dict[str, Any]:
        return {
            domain: {
                "products": list(shop.products.values()),
                "inventory": dict(shop.levels),
                "orders": shop.orders,
                "bulk_operations": shop.bulk_operations,
                "webhook_subscriptions": list(shop.subscriptions.values()),
                "calls": dict(shop.calls),
                "bucket": {
                    "currentlyAvailable": shop.bucket.available(),
                    "maximumAvailable": shop.bucket.capacity,
                    "restoreRate": shop.bucket.refill,
                },
            }
            for domain, shop in self.shops.items()
        }

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"errors": message}, status)

    # -- the GraphQL endpoint -------------------------------------------------------------------

    def graphql(self, request: Request, version: str) -> Response:
        if not _VERSION.match(version):
            return self.error_response(404, "Not Found")
        token = request.headers.get("X-Shopify-Access-Token", "")
        shop = next((s for s in self.shops.values() if s.token == token and token), None)
        if shop is None:
            return self.error_response(
                401, "[API] Invalid API key or access token (unrecognized login or wrong password)"
            )
        try:
            body = json.loads(request.get_data() or b"")
        except ValueError:
            return self.error_response(400, "Bad Request")
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self.error_response(400, "Bad Request")
        self._sync_bucket(shop)
        try:
            document = Document(
                body["query"], body.get("variables"), body.get("operationName"), schema=self.schema
            )
        except GraphQLRequestError as exc:
            return json_response({"errors": exc.errors})
        shop.calls.update(root.name.value for root in document.root_fields())
        requested = document.cost()
        if requested > MAX_QUERY_COST:
            return json_response(
                {
                    "errors": [
                        {
                            "message": f"Query cost is {requested}, which exceeds the single "
                            f"query max cost limit ({MAX_QUERY_COST}).",
                            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested},
                        }
                    ],
                    "extensions": self._cost(shop, requested, None),
                }
            )
        taken, _ = shop.bucket.take(requested)
        if not taken:
            self.knobs.note_throttled()
            return json_response(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": self._cost(shop, requested, None),
                }
            )
        with self.lock:
            data, errors = self.execute(shop, document, base_url=request.host_url.rstrip("/"))
        actual = min(requested, document.actual_cost(data))
        shop.bucket.give(requested - actual)  # reserved up front, refunded to what it cost
        payload: dict[str, Any] = {"data": data}
        if errors:
            payload["errors"] = errors
        payload["extensions"] = self._cost(shop, requested, actual)
        return json_response(payload)

    def _sync_bucket(self, shop: Shop) -> None:
        shape = self.knobs.rate_limit or DEFAULT_BUCKET
        if (shop.bucket.refill, shop.bucket.capacity) != shape:
            shop.bucket.configure(*shape)

    def _cost(self, shop: Shop, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": float(shop.bucket.capacity),
                    "currentlyAvailable": int(shop.bucket.available()),
                    "restoreRate": float(shop.bucket.refill),
                },
            }
        }

    def execute(
        self, shop: Shop, document: Document, *, base_url: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run every root field of ``document`` for ``shop``; returns (data, top-level errors)."""
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for root in document.root_fields():
            key = root.alias.value if root.alias else root.name.value
            resolver = getattr(self, f"_resolve_{root.name.value}", None)
            if resolver is None:
                errors.append(
                    {
                        "message": f"the sandbox does not model {root.name.value!r}",
                        "path": [key],
                        "extensions": {"code": "NOT_IMPLEMENTED_IN_SANDBOX"},
                    }
                )
                data[key] = None
                continue
            context = ResolveContext(shop=shop, document=document, field=root, base_url=base_url)
            try:
                value = resolver(context, document.arguments(root))
            except TopLevelError as exc:
                errors.append(
                    {"message": str(exc), "path": [key], "extensions": {"code": exc.code}}
                )
                data[key] = None
                continue
            data[key] = document.project(value, root.selection_set)
        return data, errors

    # -- queries --------------------------------------------------------------------------------

    def _resolve_locations(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        return connection([{"id": LOCATION_ID, "name": "Sandbox warehouse", "isActive": True}])

    def _resolve_shop(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        return {"name": ctx.shop.domain.split(".")[0], "myshopifyDomain": ctx.shop.domain}

    def _resolve_products(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        products = [self._product_view(ctx.shop, p) for p in ctx.shop.products.values()]
        return paginate(products, args)

    def _resolve_product(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        product = ctx.shop.products.get(args.get("id", ""))
        return self._product_view(ctx.shop, product) if product else None

    def _resolve_productVariants(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        skus = set(re.findall(r"sku:(?:\"([^\"]*)\"|'([^']*)'|(\S+))", args.get("query") or ""))
        wanted = {next(part for part in match if part) for match in skus}
        variants = [
            {**v, "product": {"id": p["id"], "title": p["title"]}}
            for p in ctx.shop.products.values()
            for v in self._product_view(ctx.shop, p)["variants"]["nodes"]
            if not wanted or v["sku"] in wanted
        ]
        return paginate(variants, args)

    def _resolve_orders(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        match = re.search(r"updated_at:>'?([^' ]+)'?", args.get("query") or "")
        since = parse_time(match.group(1)) if match else None
        orders = [
            o["graphql"]
            for o in ctx.shop.orders
            if since is None or parse_time(o["graphql"]["updatedAt"]) > since
        ]
        return paginate(orders, args)

    def _product_view(self, shop: Shop, product: dict[str, Any]) -> dict[str, Any]:
        variants = [
            {**v, "inventoryQuantity": shop.levels.get(v["inventoryItem"]["id"], 0)}
            for v in product["variants"]
        ]
        return {
            **product,
            "variants": connection(variants),
            "media": connection(product.get("media", [])),
            "totalInventory": sum(v["inventoryQuantity"] for v in variants),
        }

    # -- mutations ------------------------------------------------------------------------------

    def _resolve_productSet(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        shop, data = ctx.shop, dict(args.get("input") or {})
        identifier = args.get("identifier") or {}
        product: dict[str, Any] | None = None
        if identifier.get("id") or data.get("id"):
            product = shop.products.get(str(identifier.get("id") or data.get("id")))
            if product is None:
                return {
                    "product": None,
                    "productSetOperation": None,
                    "userErrors": [
                        user_error(
                            ["input", "id"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST"
                        )
                    ],
                }
        elif identifier.get("handle"):
            product = next(
                (p for p in shop.products.values() if p["handle"] == identifier["handle"]), None
            )
            data.setdefault("handle", identifier["handle"])
        errors = check_product_input(data, creating=product is None)
        errors += self._files_problems(shop, data.get("files") or [])
        if errors:
            return {"product": None, "productSetOperation": None, "userErrors": errors}
        stamp = now()
        if product is None:
            handle = data.get("handle") or handleize(data.get("title", "product"))
            taken = {p["handle"] for p in shop.products.values()}
            base, n = handle, 1
            while handle in taken:
                handle, n = f"{base}-{n}", n + 1
            product = {
                "id": self._gid("Product"),
                "handle": handle,
                "title": "",
                "descriptionHtml": "",
                "status": "ACTIVE",
                "createdAt": stamp,
                "variants": [],
            }
            shop.products[product["id"]] = product
        for key in ("title", "descriptionHtml", "status", "vendor", "productType", "tags"):
            if key in data:
                product[key] = data[key]
        product["updatedAt"] = stamp
        if "variants" in data:
            product["variants"] = self._set_variants(shop, product, data["variants"] or [])
        if "files" in data:
            self._set_media(shop, product, data["files"] or [])
        return {
            "product": self._product_view(shop, product),
            "productSetOperation": None,
            "userErrors": [],
        }

    def _set_variants(
        self, shop: Shop, product: dict[str, Any], inputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        existing = list(product["variants"])
        kept: list[dict[str, Any]] = []
        for item in inputs:
            options = option_key(item.get("optionValues") or [])
            match = next(
                (
                    v
                    for v in existing
                    if (item.get("id") and v["id"] == item["id"])
                    or (not item.get("id") and v["options"] == options)
                ),
                None,
            )
            sku = item.get("sku") or (item.get("inventoryItem") or {}).get("sku") or ""
            if match is None:
                match = {
                    "id": self._gid("ProductVariant"),
                    "inventoryItem": {"id": self._gid("InventoryItem"), "tracked": True},
                    "options": options,
                    "price": "0.00",
                }
                shop.levels[match["inventoryItem"]["id"]] = sum(
                    q.get("quantity", 0)
                    for q in item.get("inventoryQuantities") or ()
                    if q.get("name") == "available"
                )
            match.update(
                {
                    "sku": sku,
                    "title": " / ".join(value for _, value in options) or "Default Title",
                    "selectedOptions": [{"name": n, "value": v} for n, v in options],
                    "options": options,
                }
            )
            match["inventoryItem"]["sku"] = sku
            if item.get("price") is not None:
                match["price"] = f"{Decimal(str(item['price'])):.2f}"
            kept.append(match)
        for gone in existing:
            if gone not in kept:
                shop.levels.pop(gone["inventoryItem"]["id"], None)
        return kept

    def _resolve_productDelete(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        product_id = str((args.get("input") or {}).get("id"))
        product = ctx.shop.products.pop(product_id, None)
        if product is None:
            return {
                "deletedProductId": None,
                "productDeleteOperation": None,
                "userErrors": [user_error(["id"], "Product does not exist")],
            }
        for variant in product["variants"]:
            ctx.shop.levels.pop(variant["inventoryItem"]["id"], None)
        return {"deletedProductId": product_id, "productDeleteOperation": None, "userErrors": []}

    def seed_listings(
        self, data: Mapping[str, Any], listings: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        shop = self.shops.get(str(data.get("shop")))
        if shop is None:
            raise SandboxError("unknown shop")
        made = []
        for listing in listings:
            stamp = now()
            product: dict[str, Any] = {
                "id": self._gid("Product"),
                "title": str(listing.get("title") or "Product"),
                "descriptionHtml": str(listing.get("description") or ""),
                "status": "ACTIVE",
                "createdAt": stamp,
                "updatedAt": stamp,
                "variants": [],
            }
            # The merchant's own handle, never the hub's ``fusion-<key>`` one.
            product["handle"] = f"{handleize(product['title'])}-{product['id'].rsplit('/', 1)[1]}"
            for given in listing.get("variants") or [{}]:
                sku = str(given.get("sku") or "")
                options = [["Variant", sku or product["title"]]]
                variant = {
                    "id": self._gid("ProductVariant"),
                    "inventoryItem": {"id": self._gid("InventoryItem"), "tracked": True,
                                      "sku": sku},
                    "options": options,
                    "selectedOptions": [{"name": n, "value": v} for n, v in options],
                    "sku": sku,
                    "title": str(given.get("title") or sku or "Default Title"),
                    "price": f"{Decimal(str(given.get('price', '0'))):.2f}",
                    "barcode": given.get("barcode"),
                }  # fmt: skip
                shop.levels[variant["inventoryItem"]["id"]] = int(given.get("quantity", 0))
                product["variants"].append(variant)
            shop.products[product["id"]] = product
            made.append({"id": product["id"]})
        return made

    # -- orders and webhooks --------------------------------------------------------------------

    def place_order(self, data: Mapping[str, Any]) -> dict[str, Any]:
        shop = self.shops.get(str(data.get("shop")))
        if shop is None:
            raise SandboxError("unknown shop")
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines:
            raise SandboxError("lines must be a non-empty list of {sku, quantity}")
        variants = {
            v["sku"]: (p, v) for p in shop.products.values() for v in p["variants"] if v.get("sku")
        }
        line_items = []
        for line in lines:
            found = variants.get(line.get("sku"))
            quantity = line.get("quantity")
            if found is None or not isinstance(quantity, int) or quantity <= 0:
                raise SandboxError(f"unknown sku or bad quantity in {line!r}")
            product, variant = found
            line_items.append((product, variant, quantity))
        for _, variant, quantity in line_items:
            shop.levels[variant["inventoryItem"]["id"]] -= quantity
        rest, graphql = order_payloads(next(self._ids), line_items, self._ids, data)
        shop.orders.append({"rest": rest, "graphql": graphql})
        self.send_order_webhooks(shop, rest)
        return rest
