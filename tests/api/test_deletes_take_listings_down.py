"""Deletes through the HTTP API reach the platforms first: a product is taken down from every
live listing before its rows go, a variant is pushed off its listings before its row goes,
and a store that goes leaves the merchant's products on sale, saying which.

Real sandboxes (Shopify, Printify) on loopback, stores connected and products published
through the API, and the real job engine running every job as a worker would. What is on a
platform is read from its sandbox's own state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from fusion.jobs.engine import Engine as JobEngine
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team, count_rows
from tests.plugins.e2e import sandboxes
from tests.support.merchant import connect, new_product, new_sku, publish, run


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SandboxServer]]:
    with sandboxes(["shopify", "printify"]) as started:
        yield started


def _skus(server: SandboxServer, shop: str) -> list[str]:
    """Every SKU the sandbox's shop has on sale (read from the sandbox, not the hub)."""
    state = requests.get(f"{server.url}/_sandbox/state", timeout=10).json()["state"]
    products = state.get(shop, {}).get("products", [])
    if isinstance(products, dict):
        products = list(products.values())
    return sorted(
        str(v["sku"])
        for p in products
        if "fusion:template" not in (p.get("tags") or [])
        for v in p.get("variants", [])
        if v.get("sku")
    )


def _audit(admin_engine: Engine, org: uuid.UUID, action: str) -> list[Any]:
    with admin_engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT actor_type::text AS actor, resource_id, after FROM audit_logs "
                    "WHERE org_id = :o AND action = :a ORDER BY seq"
                ),
                {"o": org, "a": action},
            )
        )


# -- products -------------------------------------------------------------------------------
def test_a_deleted_product_is_taken_down_from_its_platform_then_goes(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    org = f"/orgs/{team_a.org_id}"
    shopify = servers["shopify"]
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, _ = new_product(team_a, [sku])
    listing_id = publish(team_a, job_engine, product_id, store_id)
    assert _skus(shopify, shop.external_id) == [sku]

    # When the owner deletes the product (twice: the second asks again, harmlessly)
    first = team_a.owner.call("DELETE", f"{org}/products/{product_id}")
    again = team_a.owner.call("DELETE", f"{org}/products/{product_id}")

    # Then the answer is 202 with one delist job on the listing's store, and nothing is gone
    assert first.status_code == 202, first.json
    assert (first.json["kind"], first.json["refused"]) == ("jobs", [])
    [job] = first.json["jobs"]
    assert (job["job_type"], job["store_id"], job["payload"]["listing_id"]) == (
        "delete_product",
        store_id,
        listing_id,
    )
    assert again.status_code == 202 and len(again.json["jobs"]) == 1
    assert team_a.viewer.get(f"{org}/products/{product_id}").json["status"] == "deleting"
    assert _skus(shopify, shop.external_id) == [sku]
    [deleting] = _audit(admin_engine, team_a.org_id, "product.deleting")
    assert (deleting.actor, deleting.after["taking_down"]) == ("user", [listing_id])
    delists = _audit(admin_engine, team_a.org_id, "listing.delist")
    assert [d.after["job_id"] for d in delists] == [job["id"], again.json["jobs"][0]["id"]]

    # When the delist jobs run
    run(job_engine, job["id"])
    run(job_engine, again.json["jobs"][0]["id"])

    # Then the product is gone from the platform, and then from the hub, deleted once
    assert _skus(shopify, shop.external_id) == []
    assert team_a.viewer.get(f"{org}/products/{product_id}").status_code == 404
    assert team_a.viewer.get(f"{org}/listings/{listing_id}").status_code == 404
    assert count_rows(admin_engine, "product_variants", product_id=product_id) == 0
    [deleted] = _audit(admin_engine, team_a.org_id, "product.delete")
    assert (deleted.actor, str(deleted.resource_id)) == ("system", product_id)
    done = team_a.viewer.get(f"{org}/jobs/{job['id']}").json["result"]
    assert (done["deleted"], done["product_deleted"]) == (True, True)


def test_a_product_without_live_listings_goes_at_once(team_a: Team, admin_engine: Engine) -> None:
    org = f"/orgs/{team_a.org_id}"
    product_id, _ = new_product(team_a, [new_sku()])
    jobs_before = count_rows(admin_engine, "jobs", org_id=team_a.org_id)
    assert team_a.owner.call("DELETE", f"{org}/products/{product_id}").status_code == 204
    assert team_a.viewer.get(f"{org}/products/{product_id}").status_code == 404
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == jobs_before


def test_a_refused_take_down_keeps_the_product_and_shows_why(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    org = f"/orgs/{team_a.org_id}"
    shopify_store, shopify_shop = connect(team_a, servers["shopify"], "shopify")
    printify_store, printify_shop = connect(team_a, servers["printify"], "printify")
    sku = new_sku()
    product_id, _ = new_product(team_a, [sku])
    on_shopify = publish(team_a, job_engine, product_id, shopify_store)
    on_printify = publish(team_a, job_engine, product_id, printify_store)
    assert _skus(servers["printify"], printify_shop.external_id) == [sku]

    # When the product is deleted: Printify cannot delete a product (its capability matrix)
    answer = team_a.owner.call("DELETE", f"{org}/products/{product_id}")
    assert answer.status_code == 202, answer.json
    [job] = answer.json["jobs"]
    [refused] = answer.json["refused"]
    assert (job["payload"]["listing_id"], refused["id"]) == (on_shopify, on_printify)
    run(job_engine, job["id"])

    # Then Shopify's listing is down, Printify's stays live, failed with the reason, and the
    # product waits for it
    assert _skus(servers["shopify"], shopify_shop.external_id) == []
    assert _skus(servers["printify"], printify_shop.external_id) == [sku]
    assert team_a.viewer.get(f"{org}/products/{product_id}").json["status"] == "deleting"
    shown = team_a.viewer.get(f"{org}/listings/{on_printify}").json
    assert shown["status"] == "failed"
    assert shown["last_error"].startswith("could not be taken down: the platform (printify)")
    listed = team_a.viewer.get(f"{org}/listings?product_id={product_id}&status=failed").json
    assert [item["id"] for item in listed["items"]] == [on_printify]
    assert team_a.viewer.get(f"{org}/listings/{on_shopify}").json["status"] == "delisted"
    assert _audit(admin_engine, team_a.org_id, "product.delete") == []

    # When the owner lets the Printify store go (the merchant keeps the product there)
    gone = team_a.owner.call("DELETE", f"{org}/stores/{printify_store}")

    # Then the listing is named as left live, and the product's delete, waiting only for it,
    # is done
    assert gone.status_code == 200, gone.json
    assert [item["listing_id"] for item in gone.json["left_live_and_unmanaged"]] == [on_printify]
    assert team_a.viewer.get(f"{org}/products/{product_id}").status_code == 404
    assert _skus(servers["printify"], printify_shop.external_id) == [sku]
    [deleted] = _audit(admin_engine, team_a.org_id, "product.delete")
    assert deleted.actor == "system"


def test_an_approved_product_delete_takes_its_listings_down_first(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = connect(team_a, servers["shopify"], "shopify")
    product_id, _ = new_product(team_a, [new_sku()])
    publish(team_a, job_engine, product_id, store_id)
    # Given an operator's delete, approved by the owner
    asked = team_a.operator.call("DELETE", f"{org}/products/{product_id}")
    assert asked.status_code == 202 and asked.json["kind"] == "approval", asked.json
    decided = team_a.owner.post(
        f"{org}/approvals/{asked.json['approval']['id']}/decision", json={"decision": "approve"}
    )
    # When the approved delete runs, it answers with the delist job instead of deleting
    run(job_engine, decided.json["job_id"])
    result = team_a.viewer.get(f"{org}/jobs/{decided.json['job_id']}").json["result"]
    assert (result["deleted"], len(result["jobs"]), result["refused"]) == (False, 1, [])
    assert team_a.viewer.get(f"{org}/products/{product_id}").json["status"] == "deleting"
    # And when the delist runs, the product is gone from the platform and the hub
    run(job_engine, result["jobs"][0])
    assert _skus(servers["shopify"], shop.external_id) == []
    assert team_a.viewer.get(f"{org}/products/{product_id}").status_code == 404


# -- variants -------------------------------------------------------------------------------
def test_a_deleted_variant_leaves_the_listing_live_without_its_sku(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    org = f"/orgs/{team_a.org_id}"
    shopify = servers["shopify"]
    store_id, shop = connect(team_a, shopify, "shopify")
    keep, drop = sorted([new_sku(), new_sku()])
    product_id, [keep_id, drop_id] = new_product(team_a, [keep, drop])
    listing_id = publish(team_a, job_engine, product_id, store_id)
    assert _skus(shopify, shop.external_id) == [keep, drop]

    # When one variant is deleted
    answer = team_a.owner.call("DELETE", f"{org}/variants/{drop_id}")

    # Then 202 with one update of the listing; the variant is marked, still on the platform
    assert answer.status_code == 202, answer.json
    [job] = answer.json["jobs"]
    assert (job["job_type"], job["payload"]["listing_id"]) == ("update_product", listing_id)
    assert team_a.viewer.get(f"{org}/variants/{drop_id}").json["deleting_at"] is not None
    assert team_a.viewer.get(f"{org}/variants/{keep_id}").json["deleting_at"] is None
    assert _skus(shopify, shop.external_id) == [keep, drop]

    # When the update runs
    run(job_engine, job["id"])

    # Then the listing is live without that SKU, and the variant's row is gone
    assert _skus(shopify, shop.external_id) == [keep]
    assert team_a.viewer.get(f"{org}/listings/{listing_id}").json["status"] == "published"
    assert team_a.viewer.get(f"{org}/variants/{drop_id}").status_code == 404
    assert team_a.viewer.get(f"{org}/variants/{keep_id}").status_code == 200
    [deleted] = _audit(admin_engine, team_a.org_id, "variant.delete")
    assert (deleted.actor, str(deleted.resource_id)) == ("system", drop_id)
    result = team_a.viewer.get(f"{org}/jobs/{job['id']}").json["result"]
    assert result["variants_deleted"] == [drop_id]

    # And the last variant of a listed product cannot go on its own: delete the product
    last = team_a.owner.call("DELETE", f"{org}/variants/{keep_id}")
    assert last.status_code == 409, last.json
    assert _skus(shopify, shop.external_id) == [keep]


def test_a_variant_of_an_unlisted_product_goes_at_once(team_a: Team) -> None:
    org = f"/orgs/{team_a.org_id}"
    _, [variant_id] = new_product(team_a, [new_sku()])
    assert team_a.owner.call("DELETE", f"{org}/variants/{variant_id}").status_code == 204
    assert team_a.viewer.get(f"{org}/variants/{variant_id}").status_code == 404


# -- stores ---------------------------------------------------------------------------------
def test_a_deleted_store_leaves_its_listings_live_and_says_so(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    org = f"/orgs/{team_a.org_id}"
    shopify = servers["shopify"]
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, _ = new_product(team_a, [sku])
    listing_id = publish(team_a, job_engine, product_id, store_id)
    listing = team_a.viewer.get(f"{org}/listings/{listing_id}").json
    jobs_before = count_rows(admin_engine, "jobs", org_id=team_a.org_id)
    store_jobs = _job_ids(admin_engine, "store_id = :s", s=store_id)
    other_lines = _lines(
        admin_engine,
        "j.org_id = :o AND j.store_id IS DISTINCT FROM :s",
        o=team_a.org_id,
        s=store_id,
    )
    assert store_jobs and _lines(admin_engine, "j.store_id = :s", s=store_id) > 0

    # When the owner deletes the store
    answer = team_a.owner.call("DELETE", f"{org}/stores/{store_id}")

    # Then the answer lists the listing as left live and unmanaged, no job takes it down, and
    # the product is still on sale on the platform
    assert answer.status_code == 200, answer.json
    left = {
        "listing_id": listing_id,
        "product_id": product_id,
        "external_id": listing["external_id"],
        "url": listing["external_url"],
    }
    assert answer.json == {"store_id": store_id, "left_live_and_unmanaged": [left]}
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id, job_type="delete_product") == 0
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) <= jobs_before
    assert _skus(shopify, shop.external_id) == [sku]
    # the hub no longer manages it; the product itself stays in the catalog
    assert team_a.viewer.get(f"{org}/listings/{listing_id}").status_code == 404
    assert team_a.viewer.get(f"{org}/products/{product_id}").json["status"] == "active"
    [entry] = _audit(admin_engine, team_a.org_id, "store.delete")
    assert entry.after == {"left_live_and_unmanaged": [left]}
    # and the store's jobs went with their log lines (migration 0031's trigger), the org's
    # other jobs keeping theirs
    assert not _job_ids(admin_engine, "id = ANY(:ids)", ids=store_jobs)
    with admin_engine.connect() as conn:
        orphans = conn.execute(
            text("SELECT count(*) FROM job_logs WHERE job_id = ANY(:ids)"), {"ids": store_jobs}
        ).scalar_one()
    assert orphans == 0
    assert _lines(admin_engine, "j.org_id = :o", o=team_a.org_id) == other_lines


def _job_ids(admin_engine: Engine, where: str, **params: Any) -> list[uuid.UUID]:
    with admin_engine.connect() as conn:
        return list(conn.execute(text(f"SELECT id FROM jobs WHERE {where}"), params).scalars())


def _lines(admin_engine: Engine, where: str, **params: Any) -> int:
    """Log lines of the jobs ``where`` (on ``jobs j``) picks."""
    with admin_engine.connect() as conn:
        sql = f"SELECT count(*) FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE {where}"
        return int(conn.execute(text(sql), params).scalar_one())


def test_a_disconnected_store_leaves_its_listings_live_and_says_so(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, servers: dict[str, SandboxServer]
) -> None:
    org = f"/orgs/{team_a.org_id}"
    shopify = servers["shopify"]
    store_id, shop = connect(team_a, shopify, "shopify")
    sku = new_sku()
    product_id, _ = new_product(team_a, [sku])
    listing_id = publish(team_a, job_engine, product_id, store_id)

    # When the store is disconnected
    answer = team_a.owner.call("PATCH", f"{org}/stores/{store_id}", json={"status": "disconnected"})

    # Then its live listing is named, stays on the platform, and a product delete no longer
    # waits for it
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "disconnected"
    assert [item["listing_id"] for item in answer.json["left_live_and_unmanaged"]] == [listing_id]
    [entry] = _audit(admin_engine, team_a.org_id, "store.disconnect")
    assert [item["listing_id"] for item in entry.after["left_live_and_unmanaged"]] == [listing_id]
    renamed = team_a.owner.call("PATCH", f"{org}/stores/{store_id}", json={"name": "Old shop"})
    assert renamed.json["left_live_and_unmanaged"] == []
    assert team_a.owner.call("DELETE", f"{org}/products/{product_id}").status_code == 204
    assert _skus(shopify, shop.external_id) == [sku]
