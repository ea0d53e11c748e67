"""The Printify sandbox's data and wire conventions: limits, the error shape, shops, product and
variant bodies as Printify validates them, and Laravel-style pagination."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

GLOBAL_LIMIT = (10.0, 600.0)  # 600 requests/min per account
PUBLISH_LIMIT = (200 / 1800, 200.0)  # 200 publishes per 30 min
MAX_PAGE = 100
CODE_VALIDATION = 8203
CODE_LOCKED = 8252  # sandbox's code for "product is locked while publishing"
TEMPLATE_TAG = "fusion:template"


class PrintifyError(Exception):
    def __init__(self, status: int, message: str, reason: str = "", code: int | None = None):
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason or message
        self.code = code if code is not None else status


def pfy_error(status: int, message: str, reason: str = "", code: int | None = None) -> Response:
    code = code if code is not None else status
    body = {
        "status": "error",
        "code": code,
        "message": message,
        "errors": {"reason": reason or message, "code": code},
    }
    return Response(json.dumps(body), status=status, mimetype="application/json")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Pfy-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stamp() -> str:
    """Now, in Printify's timestamp format."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


@dataclass
class Shop:
    shop_id: int
    token: str
    title: str
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; raises PrintifyError 400 (code 8203) for anything else."""
    try:
        data = json.loads(request.get_data() or b"{}")
    except ValueError as exc:
        raise PrintifyError(400, "Validation failed.", "Malformed JSON", CODE_VALIDATION) from exc
    if not isinstance(data, dict):
        raise PrintifyError(400, "Validation failed.", "Expected a JSON object", CODE_VALIDATION)
    return data


def invalid(reason: str) -> PrintifyError:
    """Printify's 400 "Validation failed." (code 8203) with ``reason``."""
    return PrintifyError(400, "Validation failed.", reason, CODE_VALIDATION)


def is_int(value: Any) -> bool:
    """True for an int that is not a bool (JSON true must not pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def new_product(shop: Shop, body: Mapping[str, Any], variants: list[dict]) -> dict[str, Any]:
    """A new product of ``shop`` in Printify's product shape, from a validated body."""
    now = stamp()
    return {
        "id": uuid.uuid4().hex[:24],
        "title": str(body["title"]),
        "description": str(body.get("description", "")),
        "tags": [str(t) for t in body.get("tags", [])],
        "options": [],
        "variants": variants,
        "images": [],
        "created_at": now,
        "updated_at": now,
        "visible": False,
        "is_locked": False,
        "blueprint_id": body["blueprint_id"],
        "user_id": shop.shop_id * 10,
        "shop_id": shop.shop_id,
        "print_provider_id": body["print_provider_id"],
        "print_areas": body["print_areas"],
        "sales_channel_properties": [],
        "external": None,
    }


def as_int(value: Any) -> int:
    """``value`` as an int, or -1 when it is not one (no shop has that id)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def parse_variants(raw: Any, *, partial: bool = False) -> list[dict[str, Any]]:
    """Variants as Printify stores them; ``partial`` for an update's changes. Raises
    PrintifyError 400 naming the first bad field."""
    if not isinstance(raw, list) or not raw:
        raise invalid("The variants field must be a non-empty array.")
    out = []
    for n, variant in enumerate(raw):
        if not isinstance(variant, dict) or not is_int(variant.get("id")):
            raise invalid(f"variants.{n}.id must be an integer.")
        if "price" in variant and (not is_int(variant["price"]) or variant["price"] < 0):
            raise invalid(f"variants.{n}.price must be a non-negative integer (cents).")
        quantity = variant.get("quantity", 0)
        if not is_int(quantity) or quantity < 0:
            raise invalid(f"variants.{n}.quantity must be a non-negative integer.")
        if not partial and "price" not in variant:
            raise invalid(f"variants.{n}.price is required.")
        if partial:
            out.append(dict(variant))
            continue
        out.append(
            {
                "id": variant["id"],
                "sku": str(variant.get("sku") or secrets.token_hex(6).upper()),
                "cost": variant["price"] // 2,
                "price": variant["price"],
                "title": str(variant.get("title", f"Variant {variant['id']}")),
                "grams": 0,
                "is_enabled": bool(variant.get("is_enabled", True)),
                "is_default": n == 0,
                "is_available": True,
                "options": [],
                "quantity": variant.get("quantity", 1),
            }
        )
    return out


def page(request: Request, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Printify's Laravel-style pagination envelope; ``limit`` above 100 is refused."""
    try:
        page = int(request.args.get("page", "1"))
        limit = int(request.args.get("limit", "10"))
    except ValueError as exc:
        raise invalid("page and limit must be integers.") from exc
    if page < 1 or not 1 <= limit <= MAX_PAGE:
        raise invalid(f"limit must be between 1 and {MAX_PAGE}; page at least 1.")
    last = max(1, math.ceil(len(rows) / limit))
    start = (page - 1) * limit
    data = rows[start : start + limit]
    return {
        "current_page": page,
        "data": data,
        "first_page_url": "/?page=1",
        "from": start + 1 if data else None,
        "last_page": last,
        "last_page_url": f"/?page={last}",
        "next_page_url": f"/?page={page + 1}" if page < last else None,
        "path": "/",
        "per_page": limit,
        "prev_page_url": f"/?page={page - 1}" if page > 1 else None,
        "to": start + len(data) if data else None,
        "total": len(rows),
    }
