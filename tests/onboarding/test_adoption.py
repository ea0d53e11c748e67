"""Adopting what a store already sells, through the HTTP API on a running hub with real
workers and the sandboxes: a shop pre-filled with listings the hub did not make is read,
previewed (links, creates, conflicts), applied as a job with a result per listing, and then
sells through the hub: a sale on the channel takes the hub's stock, a change of the hub's
stock reaches the adopted listing. Adopting again changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fusion.config import Settings
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team, make_team
from tests.plugins.e2e import ShopSpec, point_etsy_webhooks
from tests.support.merchant import channel_shows, connect, ok
from tests.support.stack import Stack, eventually, live_stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, ("shopify", "etsy", "amazon_sc", "printify")) as running:
        yield running


# What the Shopify sandbox counts of the calls that change a shop's products or stock.
WRITES = frozenset({"productSet", "productDelete", "inventorySetQuantities",
                    "bulkOperationRunMutation"})  # fmt: skip


def seed(server: SandboxServer, shop: ShopSpec, *listings: dict[str, Any]) -> list[str]:
    """The merchant's own listings, made on the shop before the hub: their platform ids."""
    answer = requests.post(
        f"{server.url}/_sandbox/listings",
        json={**shop.order_body, "listings": list(listings)},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return [str(made["id"]) for made in answer.json()["listings"]]


def variant(sku: str, quantity: int, price: str = "20.00", **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "price": price, **extra}


def finished(team: Team, job_id: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/jobs/{job_id}"
    return eventually(  # type: ignore[no-any-return]
        lambda: (b := team.viewer.get(path).json)["status"] in ("completed", "failed") and b,
        f"job {job_id} finished",
    )


def preview(team: Team, store_id: str) -> dict[str, Any]:
    """An adoption started through the API, once its listings are read and matched."""
    base = f"/orgs/{team.org_id}/stores/{store_id}/adoptions"
    started = ok(team.operator.post(base), 202)
    assert started["status"] == "reading" and started["read_job_id"]
    read = finished(team, started["read_job_id"])
    assert read["status"] == "completed", read["last_error"]
    adoption = ok(team.viewer.get(f"{base}/{started['id']}"))
    assert adoption["status"] == "previewed" and adoption["plan"] == read["result"]
    return adoption  # type: ignore[no-any-return]


def planned(team: Team, store_id: str, adoption_id: str) -> dict[str, dict[str, Any]]:
    path = f"/orgs/{team.org_id}/stores/{store_id}/adoptions/{adoption_id}/listings"
    return {i["title"]: i for i in ok(team.viewer.get(path, query_string={"limit": 50}))["items"]}


def confirm(team: Team, store_id: str, adoption_id: str, **body: Any) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/stores/{store_id}/adoptions/{adoption_id}/confirm"
    job = ok(team.operator.post(path, json=body), 202)
    return finished(team, job["id"])


def catalog_variant(team: Team, title: str, sku: str, quantity: int, **extra: Any) -> str:
    org = f"/orgs/{team.org_id}"
    product = ok(team.owner.post(f"{org}/products", json={"title": title}), 201)
    body = {"sku": sku, "price": "12.00", "available_quantity": quantity, **extra}
    made = ok(team.owner.post(f"{org}/products/{product['id']}/variants", json=body), 201)
    return str(made["id"])


def found(team: Team, sku: str) -> list[dict[str, Any]]:
    """The catalog's variants of exactly ``sku``, each with its product and stock."""
    rows = ok(team.viewer.get(f"/orgs/{team.org_id}/variants", query_string={"sku": sku}))
    return [r for r in rows["items"] if r["variant"]["sku"] == sku]


def stock_of(team: Team, sku: str) -> int:
    [row] = found(team, sku)
    return int(row["stock"]["available_quantity"])


def sell(server: SandboxServer, shop: ShopSpec, sku: str, quantity: int) -> None:
    requests.post(
        f"{server.url}/_sandbox/orders",
        json={**shop.order_body, "lines": [{"sku": sku, "quantity": quantity}]},
        timeout=10,
    ).raise_for_status()


def shopify_calls(server: SandboxServer, shop: ShopSpec) -> dict[str, int]:
    state = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()["state"]
    return dict(state[shop.external_id]["calls"])


def test_a_shopify_store_is_adopted_then_sells_through_the_hub(stack: Stack) -> None:
    server = stack.servers["shopify"]
    team = make_team(stack.app.test_client(), "Adopt Shopify")
    org = f"/orgs/{team.org_id}"
    tag = uuid.uuid4().hex[:5].upper()
    mug, bowl, tea1, tea2, dup = (f"{n}-{tag}" for n in ("MUG", "BOWL", "TEA1", "TEA2", "DUP"))
    # Given a catalog with a mug (10 in stock) and a bowl (barcode 0002)
    mug_id = catalog_variant(team, "Mug", mug, 10)
    catalog_variant(team, "Bowl", bowl, 4, barcode=f"0002{tag}")
    store_id, shop = connect(team, server, "shopify")
    # and a shop that already sells them, made by the merchant before the hub
    seed(
        server,
        shop,
        {"title": "Mug", "variants": [variant(mug, 7)]},  # stock differs from the hub's
        {"title": "Teapot", "variants": [variant(tea1, 3, "30.00"), variant(tea2, 2, "31.00")]},
        {"title": "Dup A", "variants": [variant(dup, 1)]},  # one SKU on two listings
        {"title": "Dup B", "variants": [variant(dup, 1)]},
        {"title": "Bowl", "variants": [variant(f"B-{tag}", 4, barcode=f"0002{tag}")]},
    )

    # When the operator asks for an adoption
    adoption = preview(team, store_id)

    # Then the preview says what would link, be created, and what conflicts
    assert adoption["plan"] == {"link": 1, "create": 1, "conflict": 3, "adopted": 0}
    seen = planned(team, store_id, adoption["id"])
    assert {t: i["action"] for t, i in seen.items()} == {
        "Mug": "link",
        "Teapot": "create",
        "Dup A": "conflict",
        "Dup B": "conflict",
        "Bowl": "conflict",
    }
    [differs] = seen["Mug"]["conflicts"]
    assert (differs["kind"], differs["hub"], differs["channel"]) == ("stock_differs", 10, 7)
    assert [c["kind"] for c in seen["Dup A"]["conflicts"]] == ["sku_on_several_listings"]
    assert [c["kind"] for c in seen["Bowl"]["conflicts"]] == ["barcode_only"]
    # and nothing is written yet, in the hub or on the channel
    assert ok(team.viewer.get(f"{org}/listings"))["items"] == []
    assert channel_shows("shopify", server, shop, mug) == 7
    # and reading took pages of products, and wrote nothing to the shop's products or stock
    calls = shopify_calls(server, shop)
    assert calls["products"] >= 1 and not WRITES & set(calls), calls

    # When it is confirmed, with the unmatched listings made into products
    done = confirm(team, store_id, adoption["id"], create_unmatched=True)

    # Then a worker applied it with a result per listing
    assert done["status"] == "completed", done["last_error"]
    assert done["result"] == {"ok": 2, "failed": 3, "skipped": 0}
    results = ok(team.viewer.get(f"{org}/jobs/{done['id']}/items", query_string={"limit": 50}))
    failed = {i["key"]: i["reason"] for i in results["items"] if i["status"] == "failed"}
    assert len(failed) == 3 and all("more than one listing" in r or "barcode" in r
                                    for r in failed.values())  # fmt: skip
    # and both listings are the hub's published listings, with the channel's ids
    listings = ok(team.viewer.get(f"{org}/listings"))["items"]
    assert sorted(i["status"] for i in listings) == ["published", "published"]
    assert {i["external_id"] for i in listings} == {seen["Mug"]["external_id"],
                                                    seen["Teapot"]["external_id"]}  # fmt: skip
    # and the teapot is a catalog product with the channel's stock, brought in by the ledger
    assert (stock_of(team, tea1), stock_of(team, tea2)) == (3, 2)
    # and the hub's figure of the mug won and was pushed to the channel
    eventually(lambda: channel_shows("shopify", server, shop, mug) == 10, "Shopify shows 10")
    # and nothing was created or changed on the channel but the mug's figure
    assert not (WRITES - {"inventorySetQuantities"}) & set(shopify_calls(server, shop))

    # When a buyer on Shopify buys 2 mugs and a teapot
    sell(server, shop, mug, 2)
    sell(server, shop, tea1, 1)
    # Then the sales took the hub's stock
    eventually(lambda: stock_of(team, mug) == 8 and stock_of(team, tea1) == 2, "stock taken")
    mug_stock = ok(team.viewer.get(f"{org}/variants/{mug_id}/stock"))
    assert [m["kind"] for m in mug_stock["items"]].count("order") == 1
    # and a change of the hub's stock reaches the adopted listing
    tea1_id = found(team, tea1)[0]["variant"]["id"]
    adjust = {"delta": 5, "reason": "found in the back"}
    ok(team.operator.post(f"{org}/variants/{tea1_id}/stock-adjustments", json=adjust), 201)
    eventually(lambda: channel_shows("shopify", server, shop, tea1) == 7, "Shopify shows 7")

    # When the store is adopted again
    again = preview(team, store_id)
    # Then the listings adopted already are known, and applying changes nothing
    assert again["plan"] == {"link": 0, "create": 0, "conflict": 3, "adopted": 2}
    products = len(ok(team.viewer.get(f"{org}/products", query_string={"limit": 50}))["items"])
    redone = confirm(team, store_id, again["id"], create_unmatched=True)
    assert redone["result"] == {"ok": 0, "failed": 3, "skipped": 2}
    assert len(ok(team.viewer.get(f"{org}/listings"))["items"]) == 2
    assert len(ok(team.viewer.get(f"{org}/products", query_string={"limit": 50}))["items"]) == (
        products
    )
    assert (stock_of(team, mug), stock_of(team, tea1)) == (8, 7)
    # and a confirmed adoption is not confirmed twice
    path = f"{org}/stores/{store_id}/adoptions/{again['id']}/confirm"
    assert team.operator.post(path, json={}).status_code == 409


def test_an_etsy_store_is_adopted_then_sells_through_the_hub(stack: Stack) -> None:
    server = stack.servers["etsy"]
    team = make_team(stack.app.test_client(), "Adopt Etsy")
    org = f"/orgs/{team.org_id}"
    tag = uuid.uuid4().hex[:5].upper()
    scarf, hat_s, hat_m = f"SCARF-{tag}", f"HAT-S-{tag}", f"HAT-M-{tag}"
    # Given a catalog with a scarf, and an Etsy shop selling it and hats the hub lacks
    catalog_variant(team, "Scarf", scarf, 6)
    store_id, shop = connect(team, server, "etsy")
    point_etsy_webhooks(server.url, shop, f"{stack.url}/webhooks/etsy/{store_id}")
    seed(
        server,
        shop,
        {"title": "Scarf", "variants": [variant(scarf, 6)]},
        {"title": "Hat", "variants": [variant(hat_s, 2, "15.00"), variant(hat_m, 3, "15.00")]},
    )

    # When it is adopted without making new products
    adoption = preview(team, store_id)
    assert adoption["plan"] == {"link": 1, "create": 1, "conflict": 0, "adopted": 0}
    done = confirm(team, store_id, adoption["id"])

    # Then the scarf is linked, and the hats are left as they are
    assert done["result"] == {"ok": 1, "failed": 0, "skipped": 1}
    [listing] = ok(team.viewer.get(f"{org}/listings"))["items"]
    assert listing["status"] == "published"
    assert found(team, hat_s) == []

    # When a buyer on Etsy buys a scarf
    sell(server, shop, scarf, 1)
    # Then the sale took the hub's stock
    eventually(lambda: stock_of(team, scarf) == 5, "the hub holds 5 scarves")
    # and a change of the hub's stock reaches the adopted Etsy listing (the push's way)
    scarf_id = found(team, scarf)[0]["variant"]["id"]
    adjust = {"delta": 4, "reason": "restocked"}
    ok(team.operator.post(f"{org}/variants/{scarf_id}/stock-adjustments", json=adjust), 201)
    eventually(lambda: channel_shows("etsy", server, shop, scarf) == 9, "Etsy shows 9")

    # When it is adopted again, now making the hats a product
    again = preview(team, store_id)
    assert again["plan"] == {"link": 0, "create": 1, "conflict": 0, "adopted": 1}
    assert confirm(team, store_id, again["id"], create_unmatched=True)["result"] == {
        "ok": 1,
        "failed": 0,
        "skipped": 1,
    }
    # Then the hats sell through the hub too
    assert (stock_of(team, hat_s), stock_of(team, hat_m)) == (2, 3)
    sell(server, shop, hat_m, 2)
    eventually(lambda: stock_of(team, hat_m) == 1, "the hub holds 1 medium hat")


@pytest.mark.parametrize("platform", ["amazon_sc", "printify"])
def test_a_listing_on_amazon_or_printify_is_adopted_then_sells_through_the_hub(
    stack: Stack, platform: str
) -> None:
    server = stack.servers[platform]
    team = make_team(stack.app.test_client(), f"Adopt {platform}")
    org = f"/orgs/{team.org_id}"
    sku = f"LAMP-{uuid.uuid4().hex[:6].upper()}"
    # Given a catalog lamp (8 in stock) the shop already sells, showing 5
    lamp_id = catalog_variant(team, "Lamp", sku, 8)
    store_id, shop = connect(team, server, platform)
    seed(server, shop, {"title": "Lamp", "variants": [variant(sku, 5, "40.00")]})

    # When it is adopted
    adoption = preview(team, store_id)
    assert adoption["plan"] == {"link": 1, "create": 0, "conflict": 0, "adopted": 0}
    assert confirm(team, store_id, adoption["id"])["result"] == {
        "ok": 1,
        "failed": 0,
        "skipped": 0,
    }

    # Then the hub's figure is pushed to the channel
    eventually(lambda: channel_shows(platform, server, shop, sku) == 8, f"{platform} shows 8")
    # and a sale there takes the hub's stock
    sell(server, shop, sku, 3)
    eventually(lambda: stock_of(team, sku) == 5, "the hub holds 5 lamps")
    # and a change of the hub's stock reaches the channel
    adjust = {"delta": 2, "reason": "restocked"}
    ok(team.operator.post(f"{org}/variants/{lamp_id}/stock-adjustments", json=adjust), 201)
    eventually(lambda: channel_shows(platform, server, shop, sku) == 7, f"{platform} shows 7")


def test_adoption_is_for_operators_of_the_org_and_its_own_stores(stack: Stack) -> None:
    team = make_team(stack.app.test_client(), "Adopt roles")
    store_id, _ = connect(team, stack.servers["shopify"], "shopify")
    base = f"/orgs/{team.org_id}/stores"
    assert team.viewer.post(f"{base}/{store_id}/adoptions").status_code == 403
    assert team.operator.post(f"{base}/{uuid.uuid4()}/adoptions").status_code == 404
    missing = f"{base}/{store_id}/adoptions/{uuid.uuid4()}/confirm"
    assert team.operator.post(missing, json={}).status_code == 404
    bad = team.operator.post(f"{base}/{store_id}/adoptions/{uuid.uuid4()}/confirm",
                             json={"create_unmatched": "perhaps"})  # fmt: skip
    assert bad.status_code == 422 and "create_unmatched" in bad.json["errors"]
