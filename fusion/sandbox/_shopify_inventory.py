"""Stock in the Shopify sandbox (a mixin of ShopifySandbox): ``inventorySetQuantities``, one
request at a time or as a bulk operation (``stagedUploadsCreate``, the staged upload target,
``bulkOperationRunMutation`` run in a background thread, ``currentBulkOperation`` and
``bulkOperation`` polling, and the result file).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graphql import GraphQLSchema
from werkzeug.wrappers import Request, Response

from fusion.sandbox._shopify_graphql import Document, GraphQLRequestError
from fusion.sandbox._shopify_state import (
    INVENTORY_NAMES,
    INVENTORY_REASONS,
    LOCATION_ID,
    MAX_BULK_OPERATIONS,
    ResolveContext,
    Shop,
    TopLevelError,
    inventory_failure,
    now,
    user_error,
)


class InventoryAndBulk:
    """Inventory and bulk-operation resolvers and the storage endpoints; the sandbox provides
    the lock, the shops, the schema, ids and the executor."""

    lock: threading.RLock
    shops: dict[str, Shop]
    schema: GraphQLSchema | None

    if TYPE_CHECKING:

        def _gid(self, kind: str) -> str: ...

        def _stage_image(self, ctx: ResolveContext, item: dict[str, Any]) -> dict[str, Any]: ...

        def execute(
            self, shop: Shop, document: Document, *, base_url: str
        ) -> tuple[dict[str, Any], list[dict[str, Any]]]: ...

    # -- inventorySetQuantities -----------------------------------------------------------------

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

    # -- bulk operations ------------------------------------------------------------------------

    def _resolve_currentBulkOperation(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        wanted = args.get("type", "QUERY")
        operations = [op for op in ctx.shop.bulk_operations if op["type"] == wanted]
        return dict(operations[-1]) if operations else None

    def _resolve_bulkOperation(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        return next(
            (dict(op) for op in ctx.shop.bulk_operations if op["id"] == args.get("id")), None
        )

    def _resolve_stagedUploadsCreate(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        targets, errors = [], []
        for i, item in enumerate(args.get("input") or []):
            if item.get("resource") == "IMAGE":  # product images (_shopify_media)
                targets.append(self._stage_image(ctx, item))
                continue
            if item.get("resource") != "BULK_MUTATION_VARIABLES":
                errors.append(
                    user_error(
                        ["input", str(i), "resource"],
                        "the sandbox stages bulk variables and images only",
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
