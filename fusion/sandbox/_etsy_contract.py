"""The Etsy Open API v3 contract as the Etsy sandbox checks it: the API's base path, the
request-body schemas of ``etsy/etsy-openapi-v3.json`` (when present) and the checks of form and
JSON bodies against them, plus the inventory rules the schema cannot say.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import MultiDict

from fusion.sandbox.server import contracts_dir

log = logging.getLogger(__name__)

API = "/v3/application"


@cache
def _contract() -> dict[str, Any] | None:
    path = contracts_dir() / "etsy" / "etsy-openapi-v3.json"
    if not path.is_file():
        log.warning("etsy sandbox: %s not found; request validation is off", path)
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# The few form fields the sandbox relies on, typed for when the contract is absent.
FALLBACK_FORM: dict[str, Any] = {
    "required": ["quantity", "title", "description", "price", "who_made", "when_made",
                 "taxonomy_id"],
    "properties": {
        "quantity": {"type": "integer"},
        "price": {"type": "number"},
        "taxonomy_id": {"type": "integer"},
        "shipping_profile_id": {"type": "integer"},
        "readiness_state_id": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}  # fmt: skip


def request_schema(path: str, method: str, content_type: str) -> dict[str, Any] | None:
    """The contract's request-body schema of one operation, or None without a contract."""
    contract = _contract()
    if contract is None:
        return None
    body = contract["paths"][path][method].get("requestBody") or {}
    schema: dict[str, Any] | None = (body.get("content") or {}).get(content_type, {}).get("schema")
    return schema


def coerce_form(form: MultiDict[str, str], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Form strings typed as the schema says (arrays from repeated keys or comma lists); a
    value that does not parse is kept as a string so validation reports it."""
    out: dict[str, Any] = {}
    properties = schema.get("properties", {})
    for key in form:
        spec = properties.get(key, {})
        values = form.getlist(key)
        if spec.get("type") == "array":
            items = [part for v in values for part in v.split(",") if part != ""]
            out[key] = [_scalar(i, spec.get("items", {})) for i in items]
        else:
            out[key] = _scalar(values[-1], spec)
    return out


def _scalar(raw: str, spec: Mapping[str, Any]) -> Any:
    kind = spec.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    return raw


def schema_problem(schema: Mapping[str, Any] | None, instance: Any) -> str | None:
    if schema is None:
        return None
    errors = sorted(OAS30Validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if not errors:
        return None
    first = errors[0]
    where = ".".join(str(p) for p in first.path)
    return f"{where}: {first.message}" if where else first.message


def inventory_problem(data: Mapping[str, Any]) -> str | None:
    """Rules the schema cannot say: one offering per product, distinct variations."""
    products = data["products"]
    if not products:
        return "products must not be empty"
    seen = set()
    for product in products:
        if not isinstance(product, dict) or len(product.get("offerings") or []) != 1:
            return "each product needs exactly one entry in offerings"
        offering = product["offerings"][0]
        if offering["quantity"] < 0 or offering["price"] <= 0:
            return "offering quantity must be >= 0 and price > 0"
        key = json.dumps(product.get("property_values") or [], sort_keys=True)
        if key in seen:
            return "products must differ in their property_values"
        seen.add(key)
    skus = [p.get("sku") for p in products if p.get("sku")]
    if len(skus) != len(set(skus)):
        return "SKUs must be unique within a listing"
    return None
