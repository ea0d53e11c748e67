"""Shopify Admin GraphQL sandbox (API 2026-07 shapes).

- ``POST /admin/api/<version>/graphql.json`` with ``X-Shopify-Access-Token``; the shop is the
  one whose token it is (a real shop is its host; one sandbox host serves many shops). A bad
  token is 401 ``{"errors": "[API] Invalid API key or access token ..."}``.
- Cost-based leaky bucket per shop: 1000 points, 50 restored per second by default (the knob
  ``rate_limit`` = ``[restore per second, maximum]`` overrides it). Every answer carries
  ``extensions.cost`` with ``throttleStatus``; a query costing more than is available gets
  HTTP 200 with a ``THROTTLED`` error, one over 1000 points ``MAX_COST_EXCEEDED``.
- Documents are validated against ``shopify/admin-graphql-2026-07.graphql`` when the contract
  is present (see ``_shopify_graphql``).
- Modelled: ``locations``, ``products``/``product``, ``productVariants(query: "sku:...")``,
  ``orders(query: "updated_at:>'...'")``, ``productSet`` (create/update/upsert by id or handle;
  variants matched by id, else by option values; omitted variants deleted), ``productDelete``,
  ``inventorySetQuantities`` (``@idempotent`` and ``changeFromQuantity`` mandatory as of
  2026-04), ``stagedUploadsCreate`` (``BULK_MUTATION_VARIABLES``) with the upload target at
  ``POST /_staged_uploads``, ``bulkOperationRunMutation`` run in a background thread, results at
  ``GET /_bulk_results/<n>.jsonl``, and ``currentBulkOperation``/``bulkOperation`` polling.

Control bodies: ``POST /_sandbox/shops`` ``{"shop": "demo.myshopify.com", "token": "...",
"webhook_secret": "...", "webhook_url": "http://..." (optional)}``; ``POST /_sandbox/orders``
``{"shop": "demo.myshopify.com", "lines": [{"sku": "A-1", "quantity": 1}]}`` sends
``orders/create`` signed with ``X-Shopify-Hmac-SHA256``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fusion.sandbox._shopify_graphql import (
    MAX_QUERY_COST,
    Document,
    GraphQLRequestError,
    contract_schema,
)
from fusion.sandbox._shopify_state import (
    DEFAULT_BUCKET,
    INVENTORY_NAMES,
    INVENTORY_REASONS,
    LOCATION_ID,
    MAX_BULK_OPERATIONS,
    ResolveContext,
    Shop,
    TopLevelError,
    check_product_input,
    connection,
    handleize,
    inventory_failure,
    now,
    option_key,
    order_payloads,
    paginate,
    parse_time,
    user_error,
)
from fusion.sandbox.knobs import TokenBucket
from fusion.sandbox.server import SandboxApp, SandboxError, json_response
from fusion.sandbox.webhooks import shopify_hmac

_VERSION = re.compile(r"^\d{4}-\d{2}$|^unstable$")


class ShopifySandbox(SandboxApp):
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

    def _resolve_currentBulkOperation(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        wanted = args.get("type", "QUERY")
        operations = [op for op in ctx.shop.bulk_operations if op["type"] == wanted]
        return dict(operations[-1]) if operations else None

    def _resolve_bulkOperation(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        return next(
            (dict(op) for op in ctx.shop.bulk_operations if op["id"] == args.get("id")), None
        )

    def _product_view(self, shop: Shop, product: dict[str, Any]) -> dict[str, Any]:
        variants = [
            {**v, "inventoryQuantity": shop.levels.get(v["inventoryItem"]["id"], 0)}
            for v in product["variants"]
        ]
        return {
            **product,
            "variants": connection(variants),
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

    def _resolve_inventorySetQuantities(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        idempotent = ctx.document.directive_arguments(ctx.field, "idempotent")
        if not idempotent or not idempotent.get("key"):
            raise TopLevelError(
                "The @idempotent directive is required for this mutation but was not provided.",
                "BAD_REQUEST",
            )
        data = args.get("input") or {}
        quantities = data.get("quantities") or []
        if any("changeFromQuantity" not in q for q in quantities):
            raise TopLevelError(
                "InventoryQuantityInput must include the following argument: changeFromQuantity.",
                "INVALID_FIELD_ARGUMENTS",
            )
        key, fingerprint = str(idempotent["key"]), json.dumps(data, sort_keys=True)
        if key in ctx.shop.idempotency:
            seen, result = ctx.shop.idempotency[key]
            if seen != fingerprint:
                return inventory_failure(
                    "The same idempotency key was used with different parameters.",
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                )
            return result  # a replay answers what the first request did, changing nothing
        result = self._set_quantities(ctx.shop, data, quantities)
        ctx.shop.idempotency[key] = (fingerprint, result)
        return result

    def _set_quantities(
        self, shop: Shop, data: Mapping[str, Any], quantities: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if data.get("name") not in INVENTORY_NAMES:
            return inventory_failure(
                "The quantity name is invalid.", "INVALID_NAME", ["input", "name"]
            )
        if data.get("reason") not in INVENTORY_REASONS:
            return inventory_failure(
                "The reason is invalid.", "INVALID_REASON", ["input", "reason"]
            )
        for i, q in enumerate(quantities):
            path = ["input", "quantities", str(i)]
            if q["inventoryItemId"] not in shop.levels:
                return inventory_failure(
                    "The specified inventory item could not be found.",
                    "INVALID_INVENTORY_ITEM",
                    path,
                )
            if q["locationId"] != LOCATION_ID:
                return inventory_failure(
                    "The specified location could not be found.", "INVALID_LOCATION", path
                )
            if not -1_000_000_000 <= q["quantity"] <= 1_000_000_000:
                return inventory_failure(
                    "The quantity is out of range.", "INVALID_QUANTITY_TOO_HIGH", path
                )
            expected = q.get("changeFromQuantity")
            if expected is not None and expected != shop.levels[q["inventoryItemId"]]:
                return inventory_failure(
                    "The changeFromQuantity does not match the current quantity.",
                    "CHANGE_FROM_QUANTITY_STALE",
                    path,
                )
        changes = []
        for q in quantities:
            before = shop.levels[q["inventoryItemId"]]
            shop.levels[q["inventoryItemId"]] = q["quantity"]
            for name in ("available", "on_hand"):
                changes.append(
                    {
                        "name": name,
                        "delta": q["quantity"] - before,
                        "quantityAfterChange": q["quantity"] if name == data["name"] else None,
                        "item": {"id": q["inventoryItemId"]},
                        "location": {"id": q["locationId"]},
                    }
                )
        return {
            "inventoryAdjustmentGroup": {
                "id": self._gid("InventoryAdjustmentGroup"),
                "createdAt": now(),
                "reason": data["reason"],
                "referenceDocumentUri": data.get("referenceDocumentUri"),
                "changes": changes,
            },
            "userErrors": [],
        }

    def _resolve_stagedUploadsCreate(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        targets, errors = [], []
        for i, item in enumerate(args.get("input") or []):
            if item.get("resource") != "BULK_MUTATION_VARIABLES":
                errors.append(
                    user_error(
                        ["input", str(i), "resource"], "the sandbox stages bulk variables only"
                    )
                )
                continue
            path = f"tmp/{ctx.shop.domain}/bulk/{uuid.uuid4()}/{item.get('filename', 'vars.jsonl')}"
            policy = uuid.uuid4().hex
            ctx.shop.uploads[path] = None
            ctx.shop.upload_policies[path] = policy
            targets.append(
                {
                    "url": f"{ctx.base_url}/_staged_uploads",
                    "resourceUrl": None,
                    "parameters": [
                        {"name": "key", "value": path},
                        {"name": "Content-Type", "value": item.get("mimeType", "text/jsonl")},
                        {"name": "success_action_status", "value": "201"},
                        {"name": "acl", "value": "private"},
                        {"name": "policy", "value": policy},
                    ],
                }
            )
        return {"stagedTargets": targets, "userErrors": errors}

    def _resolve_bulkOperationRunMutation(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        shop, path = ctx.shop, args.get("stagedUploadPath", "")

        def refuse(message: str, code: str) -> dict[str, Any]:
            return {"bulkOperation": None, "userErrors": [user_error(None, message, code)]}

        if shop.uploads.get(path) is None:
            return refuse("The staged upload file was not found.", "NO_SUCH_FILE")
        running = [op for op in shop.bulk_operations if op["status"] in ("CREATED", "RUNNING")]
        if len(running) >= MAX_BULK_OPERATIONS:
            return refuse(
                "A bulk mutation operation for this app and shop is already in progress.",
                "LIMIT_REACHED",
            )
        try:
            mutation = Document(
                args.get("mutation", ""), {}, schema=self.schema, check_variables=False
            )
        except GraphQLRequestError as exc:
            return refuse(str(exc), "INVALID_MUTATION")
        if not mutation.is_mutation or len(mutation.root_fields()) != 1:
            return refuse(
                "The bulk mutation must contain exactly one mutation field.", "INVALID_MUTATION"
            )
        content = shop.uploads[path] or b""
        operation = {
            "id": self._gid("BulkOperation"),
            "status": "CREATED",
            "type": "MUTATION",
            "errorCode": None,
            "createdAt": now(),
            "completedAt": None,
            "objectCount": "0",
            "rootObjectCount": "0",
            "fileSize": None,
            "url": None,
            "partialDataUrl": None,
            "query": args["mutation"],
        }
        shop.bulk_operations.append(operation)
        threading.Thread(
            target=self._run_bulk,
            args=(shop, operation, args["mutation"], content, ctx.base_url),
            daemon=True,
        ).start()
        return {"bulkOperation": dict(operation), "userErrors": []}

    def _run_bulk(
        self, shop: Shop, operation: dict[str, Any], mutation: str, content: bytes, base_url: str
    ) -> None:
        with self.lock:
            operation["status"] = "RUNNING"
        lines: list[str] = []
        for number, raw in enumerate(content.decode().splitlines()):
            if not raw.strip():
                continue
            try:
                document = Document(mutation, json.loads(raw), schema=self.schema)
                with self.lock:
                    data, errors = self.execute(shop, document, base_url=base_url)
                line: dict[str, Any] = {"data": data, "__lineNumber": number}
                if errors:
                    line["errors"] = errors
            except (ValueError, GraphQLRequestError) as exc:
                line = {"errors": [{"message": str(exc)}], "__lineNumber": number}
            lines.append(json.dumps(line))
        result = ("\n".join(lines) + "\n").encode()
        name = operation["id"].rsplit("/", 1)[1] + ".jsonl"
        with self.lock:
            shop.bulk_results[name] = result
            operation.update(
                {
                    "status": "COMPLETED",
                    "completedAt": now(),
                    "objectCount": str(len(lines)),
                    "rootObjectCount": str(len(lines)),
                    "fileSize": str(len(result)),
                    "url": f"{base_url}/_bulk_results/{name}",
                }
            )

    # -- staged upload target and bulk results (a storage bucket in real life) ------------------

    def staged_upload(self, request: Request) -> Response:
        key = request.form.get("key", "")
        with self.lock:
            shop = next((s for s in self.shops.values() if key in s.upload_policies), None)
            if shop is None or request.form.get("policy") != shop.upload_policies[key]:
                return Response(
                    b"<Error><Code>AccessDenied</Code></Error>", 403, mimetype="application/xml"
                )
            upload = request.files.get("file")
            if upload is None:
                return Response(
                    b"<Error><Code>InvalidArgument</Code></Error>", 400, mimetype="application/xml"
                )
            shop.uploads[key] = upload.read()
        body = f"<PostResponse><Key>{key}</Key></PostResponse>".encode()
        return Response(body, 201, mimetype="application/xml")

    def bulk_result(self, request: Request, name: str) -> Response:
        with self.lock:
            for shop in self.shops.values():
                if name in shop.bulk_results:
                    return Response(shop.bulk_results[name], mimetype="application/jsonl")
        return Response(b"<Error><Code>NoSuchKey</Code></Error>", 404, mimetype="application/xml")

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
        if shop.webhook_url:
            body = json.dumps(rest).encode()
            delivery_id = str(uuid.uuid4())
            self.deliver(
                url=shop.webhook_url,
                body=body,
                delivery_id=delivery_id,
                topic="orders/create",
                headers={
                    "X-Shopify-Topic": "orders/create",
                    "X-Shopify-Hmac-Sha256": shopify_hmac(shop.webhook_secret, body),
                    "X-Shopify-Shop-Domain": shop.domain,
                    "X-Shopify-API-Version": "2026-07",
                    "X-Shopify-Webhook-Id": delivery_id,
                    "X-Shopify-Event-Id": str(uuid.uuid4()),
                    "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
                    "X-Shopify-Order-Id": str(rest["id"]),
                },
            )
        return rest
