"""The in-memory side of the Shopify sandbox: a shop's objects and the shapes it answers with."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fusion.sandbox._shopify_graphql import Document
from fusion.sandbox.knobs import TokenBucket

DEFAULT_BUCKET = (50.0, 1000.0)  # (restore per second, maximumAvailable)
LOCATION_ID = "gid://shopify/Location/1"
INVENTORY_NAMES = ("available", "on_hand")
INVENTORY_REASONS = frozenset(
    [
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    ]
)
MAX_BULK_OPERATIONS = 5  # concurrent per shop since API 2026-01


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def connection(nodes: list[Any]) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "edges": [{"node": n, "cursor": str(i)} for i, n in enumerate(nodes)],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": "0" if nodes else None,
            "endCursor": str(len(nodes) - 1) if nodes else None,
        },
    }


def user_error(field: list[str] | None, message: str, code: str | None = None) -> dict[str, Any]:
    return {"field": field, "message": message, "code": code}


@dataclass
class Shop:
    domain: str
    token: str
    webhook_secret: str
    webhook_url: str | None
    bucket: TokenBucket
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)  # inventory item id -> available
    idempotency: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    uploads: dict[str, bytes | None] = field(default_factory=dict)  # staged path -> content
    upload_policies: dict[str, str] = field(default_factory=dict)  # staged path -> policy
    bulk_operations: list[dict[str, Any]] = field(default_factory=list)
    bulk_results: dict[str, bytes] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> subscription
    # Admin API calls the shop answered, by root field (``inventorySetQuantities``, ...).
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class ResolveContext:
    shop: Shop
    document: Document
    field: Any
    base_url: str


class TopLevelError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def inventory_failure(message: str, code: str, path: list[str] | None = None) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None, "userErrors": [user_error(path, message, code)]}


def check_product_input(data: Mapping[str, Any], *, creating: bool) -> list[dict[str, Any]]:
    errors = []
    if creating and not (data.get("title") or "").strip():
        errors.append(user_error(["input", "title"], "Title can't be blank", "BLANK"))
    skus = [v.get("sku") for v in data.get("variants") or () if v.get("sku")]
    if len(skus) != len(set(skus)):
        errors.append(user_error(["input", "variants"], "SKUs must be unique", "DUPLICATED_INPUT"))
    for i, variant in enumerate(data.get("variants") or ()):
        price = variant.get("price")
        if price is not None and Decimal(str(price)) < 0:
            errors.append(
                user_error(["input", "variants", str(i), "price"], "Price must be >= 0", "INVALID")
            )
    return errors


def option_key(values: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(v.get("optionName") or ""), str(v.get("name") or "")] for v in values]


def handleize(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def paginate(items: list[Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """A connection over ``items`` from the cursor ``after`` (cursors are list positions)."""
    start = int(args["after"]) + 1 if args.get("after") not in (None, "") else 0
    size = args.get("first") or 50
    page = items[start : start + size]
    return {
        "nodes": page,
        "edges": [{"node": n, "cursor": str(start + i)} for i, n in enumerate(page)],
        "pageInfo": {
            "hasNextPage": start + size < len(items),
            "hasPreviousPage": start > 0,
            "startCursor": str(start) if page else None,
            "endCursor": str(start + len(page) - 1) if page else None,
        },
    }


def order_payloads(
    number: int,
    line_items: list[tuple[dict[str, Any], dict[str, Any], int]],
    ids: Iterator[int],
    data: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order as the ``orders/create`` webhook (REST JSON) and as GraphQL ``Order``."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    total = sum((Decimal(v["price"]) * q for _, v, q in line_items), Decimal("0"))
    rest = {
        "id": number,
        "admin_graphql_api_id": f"gid://shopify/Order/{number}",
        "name": f"#{number}",
        "order_number": number,
        "email": data.get("email", "buyer@example.com"),
        "created_at": now,
        "updated_at": now,
        "currency": "USD",
        "presentment_currency": "USD",
        "total_price": f"{total:.2f}",
        "subtotal_price": f"{total:.2f}",
        "total_tax": "0.00",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "test": True,
        "line_items": [
            {
                "id": next(ids),
                "variant_id": int(v["id"].rsplit("/", 1)[1]),
                "product_id": int(p["id"].rsplit("/", 1)[1]),
                "sku": v["sku"],
                "quantity": q,
                "price": v["price"],
                "title": p["title"],
                "fulfillable_quantity": q,
            }
            for p, v, q in line_items
        ],
    }
    graphql = {
        "id": rest["admin_graphql_api_id"],
        "name": rest["name"],
        "createdAt": now,
        "updatedAt": now,
        "displayFinancialStatus": "PAID",
        "cancelledAt": None,
        "currencyCode": "USD",
        "totalPriceSet": {"shopMoney": {"amount": rest["total_price"], "currencyCode": "USD"}},
        "lineItems": connection(
            [
                {
                    "id": f"gid://shopify/LineItem/{item['id']}",
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "originalUnitPriceSet": {
                        "shopMoney": {"amount": item["price"], "currencyCode": "USD"}
                    },
                }
                for item in rest["line_items"]
            ]
        ),
    }
    return rest, graphql
