"""Amazon SP-API contracts for the sandbox: the published Swagger models and JSON schemas.

The files live outside the repository (``../shared/contracts/amazon`` next to the repo, or
``$FUSION_CONTRACTS_DIR/amazon``) and are never copied in. When they are absent the sandbox
still runs, without validation, and says so once in its log.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from fusion.config import sandbox_contracts_dir

log = logging.getLogger(__name__)

LISTINGS = "listingsItems_2021-08-01.json"
FEEDS = "feeds_2021-06-30.json"
ORDERS = "ordersV0.json"
LISTINGS_FEED = "listings-feed-schema-v2.json"
PROCESSING_REPORT = "listings-feed-processing-report-schema-v2.json"
ORDER_CHANGE = "OrderChangeNotification.json"


def contracts_dir() -> Path:
    """Where the Amazon contract files are expected (they may be absent)."""
    root = sandbox_contracts_dir()
    if root is not None:
        return root / "amazon"
    return Path(__file__).resolve().parents[2].parent / "shared" / "contracts" / "amazon"


@cache
def load(name: str) -> dict[str, Any] | None:
    """The parsed contract file ``name``, or None (logged once) when it is not there."""
    path = contracts_dir() / name
    if not path.is_file():
        log.warning("amazon sandbox: contract %s not found at %s; validation is off", name, path)
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def available() -> bool:
    """True when every contract the sandbox validates against is present."""
    return all(load(n) is not None for n in (LISTINGS, FEEDS, ORDERS, LISTINGS_FEED))


def definition_errors(document: str, definition: str, instance: Any) -> list[str]:
    """Messages for every way ``instance`` breaks ``#/definitions/<definition>`` of a Swagger
    2.0 model; empty when it conforms or when the contract is absent."""
    doc = load(document)
    if doc is None:
        return []
    # Swagger 2.0 schemas are draft-4 JSON Schema; validating against the whole document as
    # the root lets every "#/definitions/..." reference resolve.
    schema = {"$ref": f"#/definitions/{definition}", "definitions": doc["definitions"]}
    return _errors(jsonschema.Draft4Validator(schema), instance)


def schema_errors(document: str, instance: Any) -> list[str]:
    """Messages for every way ``instance`` breaks a standalone JSON schema file."""
    doc = load(document)
    if doc is None:
        return []
    validator_cls = jsonschema.validators.validator_for(doc)
    return _errors(validator_cls(doc), instance)


def _errors(validator: Any, instance: Any) -> list[str]:
    out = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.path) or "(root)"
        out.append(f"{where}: {error.message}"[:300])
    return out
