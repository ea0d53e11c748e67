"""Etsy Open API v3 sandbox.

Paths are the real ones under ``/v3/application/`` (point a store's base URL at the sandbox
instead of ``https://openapi.etsy.com``). Every API request needs ``x-api-key:
{keystring}:{shared_secret}`` (401 otherwise) and ``Authorization: Bearer {user_id}.{token}``
for the shop's owner (401 for a bad token, 403 for another user's shop). Errors are
``{"error": "..."}``.

Modelled operations: ``getListingsByShop`` (``state``, ``limit``, ``offset``,
``includes=Inventory``), ``createDraftListing`` and ``updateListing`` (form-encoded, 201/200),
``deleteListing`` (204), ``getListing``, ``getListingInventory``/``updateListingInventory`` (JSON,
replaces the whole inventory), ``getShopReceipts`` (``min_last_modified``, ...),
``getShopReceipt`` and ``createReceiptShipment``, and listing images (``uploadListingImage``,
``getListingImages``, ``deleteListingImage``: ``_etsy_images``; activating a listing needs
one). Form, JSON and multipart bodies are validated against ``etsy/etsy-openapi-v3.json`` when
the contract is present (400 with the first problem otherwise). Each shop counts the calls
its owner's token made, by operation id (``calls`` in ``/_sandbox/state``).

Rate limits as Etsy documents them, counted per API keystring: queries per second (a bucket
holding one second's worth, refilled continuously, so a client that paces itself by the
headers is never refused) and queries per day (a fixed day window), with ``x-limit-per-second``,
``x-remaining-this-second``, ``x-limit-per-day`` and ``x-remaining-today`` on every answer
and 429 + ``retry-after`` when exceeded. Defaults 10/s and 10,000/day; the ``rate_limit`` knob
``[per second, per day]`` overrides them.

OAuth as Etsy documents it: access tokens live ``token_ttl_s`` (3,600 s unless the shop says
otherwise) and an expired one is answered 401 ``{"error": "invalid_token", "error_description":
"access token is expired"}``. ``POST /v3/public/oauth/token`` (form-encoded,
``grant_type=refresh_token``, ``client_id`` = the keystring, ``refresh_token``) issues a new
pair ``{access_token, token_type, expires_in, refresh_token}``, both ``{user_id}.``-prefixed;
the old refresh token stops working (rotation), an unknown or revoked one is 400
``{"error": "invalid_grant", ...}``.

Control bodies: ``POST /_sandbox/shops`` ``{"shop_id": 1001, "user_id": 77, "keystring": "...",
"shared_secret": "...", "access_token": "...", "webhook_secret": "whsec_...",
"webhook_url": "http://..." (optional), "refresh_token": "..." (optional, without the user id
prefix), "token_ttl_s": 3600 (optional)}``; ``POST /_sandbox/revoke`` ``{"shop_id": 1001}``
revokes the shop's grant (the merchant removed the app): its refresh token stops working
(the access token lives out its lifetime); ``POST /_sandbox/orders`` ``{"shop_id": 1001,
"lines": [{"sku": "A-1", "quantity": 1}]}`` creates a paid receipt, takes the stock and sends an
``order.paid`` event signed the Standard Webhooks way (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). The event carries ``event_type``, ``resource_url`` and ``shop_id`` as
Etsy documents, plus the receipt itself under ``receipt`` (an assumption, see docs/sandboxes.md).
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from itertools import count
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fusion.sandbox._etsy_contract import (
    API,
    FALLBACK_FORM,
    coerce_form,
    inventory_problem,
    request_schema,
    schema_problem,
)
from fusion.sandbox._etsy_images import ListingImages
from fusion.sandbox._etsy_receipts import ReceiptsAndOrders
from fusion.sandbox._etsy_state import DayWindow, Shop, money
from fusion.sandbox.knobs import TokenBucket
from fusion.sandbox.server import Respond, SandboxApp, SandboxError, json_response, read_json

TOKEN_PATH = "/v3/public/oauth/token"  # noqa: S105 (a path, not a secret)
DEFAULT_LIMITS = (10.0, 10_000.0)  # (queries per second, queries per day)
DAY_S = 86_400.0
# The routes' handlers by Etsy's operation ids, as a shop's ``calls`` counts them.
OPERATIONS = {
    "get_listings": "getListingsByShop",
    "create_listing": "createDraftListing",
    "update_listing": "updateListing",
    "get_listing": "getListing",
    "delete_listing": "deleteListing",
    "get_inventory": "getListingInventory",
    "put_inventory": "updateListingInventory",
    "get_receipts": "getShopReceipts",
    "get_receipt": "getShopReceipt",
    "upload_listing_image": "uploadListingImage",
    "get_listing_images": "getListingImages",
    "delete_listing_image": "deleteListingImage",
    "create_receipt_shipment": "createReceiptShipment",
}


class EtsySandbox(ReceiptsAndOrders, ListingImages, SandboxApp):
    platform = "etsy"

    def __init__(self) -> None:
        super().__init__()
        self.shops: dict[int, Shop] = {}
        self._ids = count(5_000_001)
        self._windows: dict[str, tuple[TokenBucket, DayWindow]] = {}
        self._limit_lock = threading.Lock()

    def routes(self) -> Iterable[Rule]:
        return [
            Rule(f"{API}/shops/<int:shop_id>/listings", methods=["GET"], endpoint="get_listings"),
            Rule(
                f"{API}/shops/<int:shop_id>/listings", methods=["POST"], endpoint="create_listing"
            ),
            Rule(
                f"{API}/shops/<int:shop_id>/listings/<int:listing_id>",
                methods=["PATCH"],
                endpoint="update_listing",
            ),
            Rule(f"{API}/listings/<int:listing_id>", methods=["GET"], endpoint="get_listing"),
            Rule(f"{API}/listings/<int:listing_id>", methods=["DELETE"], endpoint="delete_listing"),
            Rule(
                f"{API}/listings/<int:listing_id>/inventory",
                methods=["GET"],
                endpoint="get_inventory",
            ),
            Rule(
                f"{API}/listings/<int:listing_id>/inventory",
                methods=["PUT"],
                endpoint="put_inventory",
            ),
            Rule(f"{API}/shops/<int:shop_id>/receipts", methods=["GET"], endpoint="get_receipts"),
            Rule(TOKEN_PATH, methods=["POST"], endpoint="oauth_token"),
            Rule("/_sandbox/revoke", methods=["POST"], endpoint="revoke_grant"),
            Rule(
                f"{API}/shops/<int:shop_id>/receipts/<int:receipt_id>",
                methods=["GET"],
                endpoint="get_receipt",
            ),
            Rule(
                f"{API}/shops/<int:shop_id>/listings/<int:listing_id>/images",
                methods=["POST"],
                endpoint="upload_listing_image",
            ),
            Rule(
                f"{API}/listings/<int:listing_id>/images",
                methods=["GET"],
                endpoint="get_listing_images",
            ),
            Rule(
                f"{API}/shops/<int:shop_id>/listings/<int:listing_id>/images/<int:listing_image_id>",
                methods=["DELETE"],
                endpoint="delete_listing_image",
            ),
            Rule(
                f"{API}/shops/<int:shop_id>/receipts/<int:receipt_id>/tracking",
                methods=["POST"],
                endpoint="create_receipt_shipment",
            ),
        ]

    # -- control hooks --------------------------------------------------------------------------

    def create_shop(self, data: Mapping[str, Any]) -> dict[str, Any]:
        try:
            shop = Shop(
                shop_id=int(data["shop_id"]),
                user_id=int(data["user_id"]),
                keystring=str(data["keystring"]),
                shared_secret=str(data["shared_secret"]),
                access_token=str(data["access_token"]),
                webhook_secret=str(data["webhook_secret"]),
                webhook_url=data.get("webhook_url"),
                refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
                token_ttl_s=float(data.get("token_ttl_s", 3600.0)),
            )
            shop.token_expires_at = time.monotonic() + shop.token_ttl_s
        except (KeyError, TypeError, ValueError) as exc:
            raise SandboxError(
                "shop_id, user_id, keystring, shared_secret, access_token and webhook_secret "
                "are required"
            ) from exc
        self.shops[shop.shop_id] = shop
        return {"shop_id": shop.shop_id, "user_id": shop.user_id}

    def reset_state(self) -> None:
        self.shops.clear()
        with self._limit_lock:
            self._windows.clear()

    def dump_state(self) -> dict[str, Any]:
        return {
            str(shop.shop_id): {
                "listings": list(shop.listings.values()),
                "inventories": {str(k): v for k, v in shop.inventories.items()},
                "receipts": shop.receipts,
                "tokens_issued": shop.tokens_issued,
                "grant_revoked": shop.refresh_token is None,
                "images": {str(k): v for k, v in shop.images.items()},
                "calls": dict(shop.calls),
            }
            for shop in self.shops.values()
        }

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"error": message}, status)

    def seed_listings(
        self, data: Mapping[str, Any], listings: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        try:
            shop = self.shops[int(data["shop_id"])]
        except (KeyError, TypeError, ValueError) as exc:
            raise SandboxError("unknown shop_id") from exc
        made = []
        for given in listings:
            variants = given.get("variants") or [{}]
            several = len(variants) > 1
            now, listing_id = int(time.time()), next(self._ids)
            price = float(variants[0].get("price", 1))
            shop.listings[listing_id] = {
                "listing_id": listing_id, "user_id": shop.user_id, "shop_id": shop.shop_id,
                "title": str(given.get("title") or "Listing"),
                "description": str(given.get("description") or ""), "state": "active",
                "creation_timestamp": now, "created_timestamp": now, "updated_timestamp": now,
                "last_modified_timestamp": now,
                "url": f"https://www.etsy.com/listing/{listing_id}", "price": money(price),
                "tags": [], "who_made": "i_did", "when_made": "made_to_order", "taxonomy_id": 1,
                "has_variations": several,
            }  # fmt: skip
            on_property = [513] if several else []
            shop.inventories[listing_id] = {
                "products": [
                    self._product(
                        v.get("sku"),
                        [
                            {
                                "property_id": 513,
                                "property_name": "Variant",
                                "values": [str(v.get("sku") or "")],
                            }
                        ]
                        if several
                        else [],
                        float(v.get("price", price)),
                        int(v.get("quantity", 0)),
                    )
                    for v in variants
                ],
                "price_on_property": on_property,
                "quantity_on_property": on_property,
                "sku_on_property": on_property,
                "readiness_state_on_property": [],
            }
            made.append({"id": listing_id})
        return made

    # -- auth and rate limits -------------------------------------------------------------------

    def _limits(self) -> tuple[int, int]:
        per_second, per_day = self.knobs.rate_limit or DEFAULT_LIMITS
        return int(per_second), int(per_day)

    def _admit(self, keystring: str) -> tuple[dict[str, str], Response | None]:
        """Count one request against the key's windows; the rate headers, and a 429 to send
        instead of answering when a window is spent."""
        per_second, per_day = self._limits()
        with self._limit_lock:
            if keystring not in self._windows:
                self._windows[keystring] = (
                    TokenBucket(per_second, per_second),
                    DayWindow(DAY_S),
                )
            second, day = self._windows[keystring]
            if (second.refill, second.capacity) != (per_second, per_second):
                second.configure(per_second, per_second)
            day.roll()
            refused: float | None = None
            if day.used >= per_day:
                refused = day.reset_in()
            else:
                taken, _ = second.take(1)
                if taken:
                    day.used += 1
                else:
                    refused = second.wait_s(1)
            headers = {
                "x-limit-per-second": str(per_second),
                "x-remaining-this-second": str(int(second.available())),
                "x-limit-per-day": str(per_day),
                "x-remaining-today": str(max(0, per_day - day.used)),
            }
        if refused is None:
            return headers, None
        self.knobs.note_throttled()
        headers["retry-after"] = str(max(1, math.ceil(refused)))
        response = json_response(
            {"error": "You have exceeded your quota of requests. Please retry later."},
            429,
            headers,
        )
        return headers, response

    def _authorise(self, request: Request, shop_id: int | None) -> tuple[Shop, dict[str, str]]:
        api_key = request.headers.get("x-api-key", "")
        keystring, _, secret = api_key.partition(":")
        app_shops = [s for s in self.shops.values() if s.keystring == keystring and keystring]
        if not app_shops or not secret or secret != app_shops[0].shared_secret:
            raise _refusal(401, "Invalid API key: the x-api-key header must be keystring:secret")
        headers, throttled = self._admit(keystring)
        if throttled is not None:
            raise Respond(throttled)
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        user, _, token = credential.partition(".")
        owner = next(
            (s for s in app_shops if str(s.user_id) == user and s.access_token == token and token),
            None,
        )
        if scheme != "Bearer" or owner is None:
            raise _refusal(401, "invalid_token", headers)
        endpoint = str(request.environ.get("sandbox.endpoint", ""))
        owner.calls[OPERATIONS.get(endpoint, endpoint)] += 1
        if time.monotonic() >= owner.token_expires_at:
            raise Respond(
                json_response(
                    {"error": "invalid_token", "error_description": "access token is expired"},
                    401,
                    headers,
                )
            )
        if shop_id is None:
            return owner, headers
        shop = self.shops.get(shop_id)
        if shop is None:
            raise _refusal(404, f"Shop {shop_id} not found", headers)
        if shop.user_id != owner.user_id:
            raise _refusal(403, "The token does not own this shop", headers)
        return shop, headers

    def _listing_shop(self, owner: Shop, listing_id: int) -> Shop:
        for shop in self.shops.values():
            if listing_id in shop.listings:
                if shop.user_id != owner.user_id:
                    raise _refusal(403, "The token does not own this listing")
                return shop
        raise _refusal(404, f"Listing {listing_id} not found")

    # -- OAuth ----------------------------------------------------------------------------------

    def oauth_token(self, request: Request) -> Response:
        """Etsy's token endpoint, refresh grant only: a new access and refresh token, the old
        refresh token retired."""
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return _oauth_error("unsupported_grant_type", "only refresh_token is modelled")
        user, _, presented = form.get("refresh_token", "").partition(".")
        with self.lock:
            shop = next(
                (
                    s
                    for s in self.shops.values()
                    if s.refresh_token
                    and presented
                    and str(s.user_id) == user
                    and secrets.compare_digest(s.refresh_token, presented)
                ),
                None,
            )
            if shop is None:
                return _oauth_error("invalid_grant", "refresh token not found or revoked")
            if form.get("client_id") != shop.keystring:
                return _oauth_error("invalid_client", "client_id is not this app's keystring")
            shop.access_token = secrets.token_urlsafe(24)
            shop.refresh_token = secrets.token_urlsafe(24)
            shop.token_expires_at = time.monotonic() + shop.token_ttl_s
            shop.tokens_issued += 1
            body = {
                "access_token": f"{shop.user_id}.{shop.access_token}",
                "token_type": "Bearer",
                "expires_in": int(shop.token_ttl_s),
                "refresh_token": f"{shop.user_id}.{shop.refresh_token}",
            }
        return json_response(body, 200)

    def revoke_grant(self, request: Request) -> Response:
        data = read_json(request)
        with self.lock:
            shop = self.shops.get(int(data.get("shop_id", 0)))
            if shop is None:
                raise SandboxError("no such shop_id")
            shop.refresh_token = None  # the access token lives out its hour, as on Etsy
        return json_response({"revoked": True})

    # -- listings -------------------------------------------------------------------------------

    def _listing_view(self, shop: Shop, listing: dict[str, Any], includes: str) -> dict[str, Any]:
        view = dict(listing)
        inventory = shop.inventories[listing["listing_id"]]
        view["skus"] = [p["sku"] for p in inventory["products"] if p.get("sku")]
        view["quantity"] = sum(
            o["quantity"] for p in inventory["products"] for o in p["offerings"] if o["is_enabled"]
        )
        if "inventory" in includes.lower():
            view["inventory"] = inventory
        return view

    def get_listings(self, request: Request, shop_id: int) -> Response:
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            state = request.args.get("state", "active")
            try:
                limit = int(request.args.get("limit", 25))
                offset = int(request.args.get("offset", 0))
            except ValueError:
                return json_response({"error": "limit and offset must be integers"}, 400, headers)
            if not 1 <= limit <= 100 or offset < 0:
                return json_response({"error": "limit must be within 1-100"}, 400, headers)
            chosen = [lst for lst in shop.listings.values() if lst["state"] == state]
            page = chosen[offset : offset + limit]
            includes = request.args.get("includes", "")
            results = [self._listing_view(shop, lst, includes) for lst in page]
        return json_response({"count": len(chosen), "results": results}, 200, headers)

    def get_listing(self, request: Request, listing_id: int) -> Response:
        with self.lock:
            owner, headers = self._authorise(request, None)
            shop = self._listing_shop(owner, listing_id)
            view = self._listing_view(
                shop, shop.listings[listing_id], request.args.get("includes", "")
            )
        return json_response(view, 200, headers)

    def create_listing(self, request: Request, shop_id: int) -> Response:
        path = f"{API}/shops/{{shop_id}}/listings"
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            data, problem = self._form(request, path, "post")
            if problem:
                return json_response({"error": problem}, 400, headers)
            if data.get("price", 0) <= 0 or data.get("quantity", 0) < 0:
                return json_response({"error": "price must be positive"}, 400, headers)
            now = int(time.time())
            listing_id = next(self._ids)
            listing = {
                "listing_id": listing_id,
                "user_id": shop.user_id,
                "shop_id": shop.shop_id,
                "title": data["title"],
                "description": data["description"],
                "state": "draft",
                "creation_timestamp": now,
                "created_timestamp": now,
                "updated_timestamp": now,
                "last_modified_timestamp": now,
                "url": f"https://www.etsy.com/listing/{listing_id}",
                "price": money(data["price"]),
                "tags": data.get("tags") or [],
                "who_made": data["who_made"],
                "when_made": data["when_made"],
                "taxonomy_id": data["taxonomy_id"],
                "has_variations": False,
            }
            shop.listings[listing_id] = listing
            # A new listing holds one product with one offering, as on Etsy.
            shop.inventories[listing_id] = {
                "products": [
                    self._product(None, [], data["price"], data["quantity"]),
                ],
                "price_on_property": [],
                "quantity_on_property": [],
                "sku_on_property": [],
                "readiness_state_on_property": [],
            }
            view = self._listing_view(shop, listing, "")
        return json_response(view, 201, headers)

    def update_listing(self, request: Request, shop_id: int, listing_id: int) -> Response:
        path = f"{API}/shops/{{shop_id}}/listings/{{listing_id}}"
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            listing = shop.listings.get(listing_id)
            if listing is None:
                return json_response({"error": f"Listing {listing_id} not found"}, 404, headers)
            data, problem = self._form(request, path, "patch")
            if problem:
                return json_response({"error": problem}, 400, headers)
            if data.get("state") not in (None, "active", "inactive"):
                return json_response({"error": "state must be active or inactive"}, 400, headers)
            problem = self.activation_problem(shop, listing_id, data)
            if problem:
                return json_response({"error": problem}, 400, headers)
            for key, value in data.items():
                listing[key] = value
            listing["updated_timestamp"] = listing["last_modified_timestamp"] = int(time.time())
            view = self._listing_view(shop, listing, "")
        return json_response(view, 200, headers)

    def delete_listing(self, request: Request, listing_id: int) -> Response:
        with self.lock:
            owner, headers = self._authorise(request, None)
            shop = self._listing_shop(owner, listing_id)
            del shop.listings[listing_id]
            del shop.inventories[listing_id]
            shop.images.pop(listing_id, None)
        return Response(status=204, headers=headers)

    def _form(self, request: Request, path: str, method: str) -> tuple[dict[str, Any], str | None]:
        if request.mimetype != "application/x-www-form-urlencoded":
            return {}, "Content-Type must be application/x-www-form-urlencoded"
        schema = request_schema(path, method, "application/x-www-form-urlencoded")
        data = coerce_form(request.form, schema or FALLBACK_FORM)
        if schema is not None:
            return data, schema_problem(schema, data)
        # Without the contract: only the fields the sandbox itself relies on are checked.
        required = FALLBACK_FORM["required"] if method == "post" else []
        missing = [name for name in required if name not in data]
        wrong = [
            name
            for name, spec in FALLBACK_FORM["properties"].items()
            if name in data
            and spec["type"] in ("integer", "number")
            and not isinstance(data[name], int | float)
        ]
        problems = [f"{n}: required" for n in missing] + [f"{n}: not a number" for n in wrong]
        return data, "; ".join(problems) or None

    # -- inventory ------------------------------------------------------------------------------

    def _product(
        self, sku: str | None, property_values: list[Any], price: float, quantity: int
    ) -> dict[str, Any]:
        return {
            "product_id": next(self._ids),
            "sku": sku or "",
            "is_deleted": False,
            "property_values": property_values,
            "offerings": [
                {
                    "offering_id": next(self._ids),
                    "quantity": quantity,
                    "is_enabled": True,
                    "is_deleted": False,
                    "price": money(price),
                }
            ],
        }

    def get_inventory(self, request: Request, listing_id: int) -> Response:
        with self.lock:
            owner, headers = self._authorise(request, None)
            shop = self._listing_shop(owner, listing_id)
            inventory = shop.inventories[listing_id]
        return json_response(inventory, 200, headers)

    def put_inventory(self, request: Request, listing_id: int) -> Response:
        path = f"{API}/listings/{{listing_id}}/inventory"
        with self.lock:
            owner, headers = self._authorise(request, None)
            shop = self._listing_shop(owner, listing_id)
            try:
                data = json.loads(request.get_data() or b"")
            except ValueError:
                return json_response({"error": "body must be JSON"}, 400, headers)
            problem = schema_problem(request_schema(path, "put", "application/json"), data)
            if problem is None:
                try:
                    problem = inventory_problem(data)
                except (KeyError, TypeError, ValueError) as exc:  # only without the contract
                    problem = f"malformed inventory: {type(exc).__name__}"
            if problem:
                return json_response({"error": problem}, 400, headers)
            products = [
                self._product(
                    p.get("sku"),
                    p.get("property_values") or [],
                    float(p["offerings"][0]["price"]),
                    int(p["offerings"][0]["quantity"]),
                )
                for p in data["products"]
            ]
            for product, given in zip(products, data["products"], strict=True):
                product["offerings"][0]["is_enabled"] = bool(given["offerings"][0]["is_enabled"])
            shop.inventories[listing_id] = {
                "products": products,
                "price_on_property": data.get("price_on_property") or [],
                "quantity_on_property": data.get("quantity_on_property") or [],
                "sku_on_property": data.get("sku_on_property") or [],
                "readiness_state_on_property": data.get("readiness_state_on_property") or [],
            }
            listing = shop.listings[listing_id]
            listing["has_variations"] = len(products) > 1
            listing["updated_timestamp"] = listing["last_modified_timestamp"] = int(time.time())
            inventory = shop.inventories[listing_id]
        return json_response(inventory, 200, headers)


def _oauth_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, 400)


def _refusal(status: int, message: str, headers: Mapping[str, str] | None = None) -> Respond:
    return Respond(json_response({"error": message}, status, headers))
