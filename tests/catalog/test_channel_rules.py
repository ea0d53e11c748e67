"""A store's catalog rules, end to end through the HTTP API on a running hub (real Celery
workers, the platforms' sandboxes): a product published and then updated reaches each
platform at the price the store's rule computes, under the platform's category (Shopify's
product type, Etsy's taxonomy_id, Amazon's product type) and with its variants' attributes
under the platform's names; and where the platform requires a category and the store maps
none, the listing fails with an error naming the field, and nothing reaches the platform."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from fusion.config import Settings
from tests.api.conftest import Team, make_team
from tests.plugins.e2e import ShopSpec
from tests.support.merchant import connect, ok
from tests.support.stack import Stack, eventually, live_stack, warm_up_amazon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]
PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")

# The hub's product: category "mugs", base price 20.00; variant A sells at the base price,
# variant B at its own 30.00. The rule: 10% up, then up to .99; B has an override of 25.00.
RULE: dict[str, Any] = {"markup_percent": 10, "rounding": "up_to_99"}
PRICE_A, PRICE_B = Decimal("22.99"), Decimal("25.00")  # 20.00 * 1.1 = 22.00 -> 22.99
# After the update: no markup, to the cent, no override: A 20.00 and B 30.00, both marked 5%.
RULE_AFTER = {"markup_percent": 5, "rounding": "cents"}
PRICE_A_AFTER, PRICE_B_AFTER = Decimal("21.00"), Decimal("31.50")

CATEGORY = {"shopify": "Drinkware", "etsy": "1106", "amazon_sc": "DRINKING_CUP"}
CATEGORY_AFTER = {"shopify": "Mugs & Cups", "etsy": "1107", "amazon_sc": "CUP"}
ATTRIBUTES = {
    "shopify": {"size": "Size", "colour": "Color"},
    "etsy": {"size": "Size", "colour": "Colour"},
    "amazon_sc": {"size": "size_name", "colour": "color_name"},
}


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, PLATFORMS) as running:
        warm_up_amazon(running)
        yield running


def _product(team: Team) -> tuple[str, str, str]:
    """The product of the module's docstring: (product id, SKU A, SKU B)."""
    org = f"/orgs/{team.org_id}"
    body = {"title": "Mug", "description": "A mug", "category": "mugs", "base_price": "20.00"}
    product = ok(team.operator.post(f"{org}/products", json=body), 201)
    tag = uuid.uuid4().hex[:6].upper()
    sku_a, sku_b = f"A-{tag}", f"B-{tag}"
    for sku, extra in (
        (sku_a, {"attributes": {"size": "M", "colour": "red", "fabric": "clay"}}),
        (sku_b, {"price": "30.00", "attributes": {"size": "L", "colour": "red"}}),
    ):
        body = {"sku": sku, "available_quantity": 4, **extra}
        ok(team.operator.post(f"{org}/products/{product['id']}/variants", json=body), 201)
    return str(product["id"]), sku_a, sku_b


def _rules(team: Team, store_id: str, body: dict[str, Any]) -> None:
    path = f"/orgs/{team.org_id}/stores/{store_id}/catalog-rules"
    ok(team.operator.call("PUT", path, json=body))


def _listing(team: Team, listing_id: str, *statuses: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/listings/{listing_id}"
    return eventually(  # type: ignore[no-any-return]
        lambda: (body := team.viewer.get(path).json)["status"] in statuses and body,
        f"listing {listing_id} {' or '.join(statuses)}",
    )


def _job_done(team: Team, job_id: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/jobs/{job_id}"
    return eventually(  # type: ignore[no-any-return]
        lambda: (body := team.viewer.get(path).json)["status"] in ("completed", "failed") and body,
        f"job {job_id} finished",
    )


def _state(stack: Stack, platform: str, shop: ShopSpec) -> Any:
    url = stack.servers[platform].url
    state = requests.get(f"{url}/_sandbox/state", timeout=10).json()["state"]
    return state[shop.external_id]


# -- what each platform holds of the listing: (category, prices by SKU, options by SKU) ------
Seen = tuple[str | None, dict[str, Decimal], dict[str, dict[str, str]]]


def _shopify(state: Any, listing: dict[str, Any]) -> Seen:
    [product] = [p for p in state["products"] if p["id"] == listing["external_id"]]
    return (
        product.get("productType"),
        {v["sku"]: Decimal(v["price"]) for v in product["variants"]},
        {
            v["sku"]: {o["name"]: o["value"] for o in v["selectedOptions"] if o["name"] != "SKU"}
            for v in product["variants"]
        },
    )


def _etsy(state: Any, listing: dict[str, Any]) -> Seen:
    [shown] = [x for x in state["listings"] if str(x["listing_id"]) == listing["external_id"]]
    products = state["inventories"][listing["external_id"]]["products"]

    def money(offering: dict[str, Any]) -> Decimal:
        price = offering["price"]
        return (Decimal(price["amount"]) / Decimal(price["divisor"])).quantize(Decimal("0.01"))

    return (
        str(shown["taxonomy_id"]),
        {p["sku"]: money(p["offerings"][0]) for p in products},
        {
            p["sku"]: {pv["property_name"]: pv["values"][0] for pv in p["property_values"]}
            for p in products
        },
    )


def _amazon(state: Any, listing: dict[str, Any]) -> Seen:
    skus = listing["external_id"].split("|")
    items = {sku: state["listings"][sku] for sku in skus}
    [product_type] = {item["productType"] for item in items.values()}
    names = set(ATTRIBUTES["amazon_sc"].values())

    def price(item: dict[str, Any]) -> Decimal:
        [offer] = item["attributes"]["purchasable_offer"]
        amount = offer["our_price"][0]["schedule"][0]["value_with_tax"]
        return Decimal(str(amount)).quantize(Decimal("0.01"))

    return (
        product_type,
        {sku: price(item) for sku, item in items.items()},
        {
            sku: {n: item["attributes"][n][0]["value"] for n in names if n in item["attributes"]}
            for sku, item in items.items()
        },
    )


SEEN: dict[str, Callable[[Any, dict[str, Any]], Seen]] = {
    "shopify": _shopify,
    "etsy": _etsy,
    "amazon_sc": _amazon,
}


@pytest.mark.parametrize("platform", ["shopify", "etsy", "amazon_sc"])
def test_a_listing_reaches_its_platform_priced_categorised_and_named_by_the_store_rules(
    stack: Stack, platform: str
) -> None:
    team = make_team(stack.app.test_client(), f"Rules {platform}")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, stack.servers[platform], platform)
    # Given the product, and the store's rules: a price rule with an override of SKU B, its
    # category for "mugs", its attribute names
    product_id, sku_a, sku_b = _product(team)
    _rules(
        team,
        store_id,
        {
            "pricing": {**RULE, "overrides": {sku_b: "25.00"}},
            "categories": {"mugs": CATEGORY[platform], "cups": "999"},
            "attributes": ATTRIBUTES[platform],
        },
    )
    # When the product is listed and published through the API
    body = {"product_id": product_id, "store_id": store_id}
    listing = ok(team.operator.post(f"{org}/listings", json=body), 201)
    ok(team.operator.post(f"{org}/listings/{listing['id']}/publish"), 202)
    published = _listing(team, listing["id"], "published", "failed")
    assert published["status"] == "published", published["last_error"]

    # Then the platform holds it under the mapped category, at the rule's prices, with the
    # mapped attributes under the platform's names (the unmapped "fabric" left out)
    names = ATTRIBUTES[platform]
    category, prices, options = SEEN[platform](_state(stack, platform, shop), published)
    assert category == CATEGORY[platform]
    assert prices == {sku_a: PRICE_A, sku_b: PRICE_B}
    assert options == {
        sku_a: {names["size"]: "M", names["colour"]: "red"},
        sku_b: {names["size"]: "L", names["colour"]: "red"},
    }

    # When the store's rules change and the listing is updated through the API
    _rules(
        team,
        store_id,
        {"pricing": RULE_AFTER, "categories": {"*": CATEGORY_AFTER[platform]}, "attributes": names},
    )
    job = ok(team.operator.post(f"{org}/listings/{listing['id']}/update"), 202)["job"]
    done = _job_done(team, job["id"])
    assert done["status"] == "completed", done["last_error"]

    # Then the platform holds the new prices and the new category (Amazon keeps a listing's
    # product type: a patch names it, only a new listing changes it)
    category, prices, _ = SEEN[platform](_state(stack, platform, shop), published)
    assert prices == {sku_a: PRICE_A_AFTER, sku_b: PRICE_B_AFTER}
    kept = platform == "amazon_sc"
    assert category == (CATEGORY if kept else CATEGORY_AFTER)[platform]


def test_printify_gets_the_store_rule_prices(stack: Stack) -> None:
    # Printify's category is its blueprint (the store's design template): only prices apply
    team = make_team(stack.app.test_client(), "Rules printify")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, stack.servers["printify"], "printify")
    product_id, sku_a, sku_b = _product(team)
    _rules(team, store_id, {"pricing": {**RULE, "overrides": {sku_b: "25.00"}}})
    body = {"product_id": product_id, "store_id": store_id}
    listing = ok(team.operator.post(f"{org}/listings", json=body), 201)
    ok(team.operator.post(f"{org}/listings/{listing['id']}/publish"), 202)
    published = _listing(team, listing["id"], "published", "failed")
    assert published["status"] == "published", published["last_error"]
    product = _state(stack, "printify", shop)["products"][published["external_id"]]
    prices = {v["sku"]: v["price"] for v in product["variants"] if v.get("sku")}
    assert prices == {sku_a: 2299, sku_b: 2500}


@pytest.mark.parametrize(
    ("platform", "field"), [("etsy", "taxonomy_id"), ("amazon_sc", "productType")]
)
def test_a_required_category_no_mapping_fills_fails_the_listing_naming_the_field(
    stack: Stack, platform: str, field: str
) -> None:
    team = make_team(stack.app.test_client(), f"Unmapped {platform}")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, stack.servers[platform], platform)
    # Given a store that maps "cups" but not "mugs", and no "*"
    _rules(team, store_id, {"categories": {"cups": CATEGORY[platform]}})
    product_id, _, _ = _product(team)
    # When the product, a mug, is published through the API
    body = {"product_id": product_id, "store_id": store_id}
    listing = ok(team.operator.post(f"{org}/listings", json=body), 201)
    job = ok(team.operator.post(f"{org}/listings/{listing['id']}/publish"), 202)["job"]
    # Then the listing fails with an error naming the field and the unmapped category
    failed = _listing(team, listing["id"], "published", "failed")
    assert failed["status"] == "failed"
    assert failed["last_error"].startswith(f"{field} is required by ")
    assert "'mugs'" in failed["last_error"] and "catalog_rules.categories" in failed["last_error"]
    assert failed["external_id"] is None
    # And its job failed at once, for good
    done = _job_done(team, job["id"])
    assert (done["status"], done["attempts"]) == ("failed", 1)
    # And nothing reached the platform
    state = _state(stack, platform, shop)
    assert not state["listings"]


def test_shopify_publishes_without_a_category_mapping(stack: Stack) -> None:
    # Shopify's product type is optional: an unmapped category sends none, and nothing fails
    team = make_team(stack.app.test_client(), "Unmapped shopify")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, stack.servers["shopify"], "shopify")
    product_id, sku_a, sku_b = _product(team)
    body = {"product_id": product_id, "store_id": store_id}
    listing = ok(team.operator.post(f"{org}/listings", json=body), 201)
    ok(team.operator.post(f"{org}/listings/{listing['id']}/publish"), 202)
    published = _listing(team, listing["id"], "published", "failed")
    assert published["status"] == "published", published["last_error"]
    category, prices, options = _shopify(_state(stack, "shopify", shop), published)
    assert category is None
    assert prices == {sku_a: Decimal("20.00"), sku_b: Decimal("30.00")}  # no rule: hub prices
    assert options == {sku_a: {}, sku_b: {}}  # no attribute mapped: only the SKU option
