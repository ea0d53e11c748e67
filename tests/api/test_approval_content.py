"""An approval binds the content of the change, not only the ids it names: what the approved
job would push (or take down) is snapshotted when approval is asked for, and a job that finds
something else when it runs does nothing, fails saying why, and asks again with a new pending
approval for the current content.

A real Shopify sandbox on loopback, the store and products made through the API, and the real
job engine running each job as a worker would; what is on the platform is read from the
sandbox's own state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import PROVISIONERS, ShopSpec, sandboxes


@pytest.fixture(scope="module")
def shopify() -> Iterator[SandboxServer]:
    with sandboxes(["shopify"]) as started:
        yield started["shopify"]


def _connect(team: Team, server: SandboxServer) -> tuple[str, ShopSpec]:
    shop = PROVISIONERS["shopify"](server.url, "tok" + uuid.uuid4().hex)
    created = team.owner.post(
        f"/orgs/{team.org_id}/stores",
        json={
            "platform": "shopify",
            "name": "shop",
            "external_id": shop.external_id,
            "base_url": server.url,
            "credentials": dict(shop.credentials),
        },
    )
    assert created.status_code == 201, created.json
    return str(created.json["id"]), shop


def _listing(team: Team, store_id: str) -> tuple[str, str, str]:
    """(product, variant, draft listing) of a one-variant "Mug" on the store."""
    org = f"/orgs/{team.org_id}"
    product = team.owner.post(f"{org}/products", json={"title": "Mug"})
    assert product.status_code == 201, product.json
    variant = team.owner.post(
        f"{org}/products/{product.json['id']}/variants",
        json={"sku": f"SKU-{uuid.uuid4().hex[:8]}", "price": "12.50", "available_quantity": 5},
    )
    assert variant.status_code == 201, variant.json
    listing = team.owner.post(
        f"{org}/listings", json={"product_id": product.json["id"], "store_id": store_id}
    )
    assert listing.status_code == 201, listing.json
    return str(product.json["id"]), str(variant.json["id"]), str(listing.json["id"])


def _on_sale(server: SandboxServer, shop: ShopSpec) -> list[tuple[str, list[str]]]:
    """(title, prices) of every product the sandbox's shop has (read from the sandbox)."""
    state = requests.get(f"{server.url}/_sandbox/state", timeout=10).json()["state"]
    products = state.get(shop.external_id, {}).get("products", [])
    if isinstance(products, dict):
        products = list(products.values())
    return sorted(
        (str(p["title"]), sorted(str(v.get("price")) for v in p.get("variants", [])))
        for p in products
        if "fusion:template" not in (p.get("tags") or [])
    )


def _approve(team: Team, approval_id: str) -> uuid.UUID:
    decided = team.owner.post(
        f"/orgs/{team.org_id}/approvals/{approval_id}/decision", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.json
    return uuid.UUID(decided.json["job_id"])


def _ask_to_publish(team: Team, listing_id: str) -> dict[str, Any]:
    org = f"/orgs/{team.org_id}"
    policy = team.owner.post(
        f"{org}/approval-policies", json={"resource_type": "listing", "action": "publish"}
    )
    assert policy.status_code == 201, policy.json
    asked = team.operator.post(f"{org}/listings/{listing_id}/publish")
    assert asked.status_code == 202 and asked.json["kind"] == "approval", asked.json
    approval: dict[str, Any] = asked.json["approval"]
    return approval


def _pending(team: Team) -> list[dict[str, Any]]:
    found = team.viewer.get(f"/orgs/{team.org_id}/approvals?status=pending")
    items: list[dict[str, Any]] = found.json["items"]
    return items


@pytest.mark.parametrize(
    ("change", "path", "body"),
    [
        ("title", "products/{product}", {"title": "Mug (now a vase)"}),
        ("price", "variants/{variant}", {"price": "99.00"}),
    ],
)
def test_a_change_after_approval_is_not_published_and_is_asked_again(
    team_a: Team,
    job_engine: JobEngine,
    shopify: SandboxServer,
    change: str,
    path: str,
    body: dict[str, Any],
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = _connect(team_a, shopify)
    product_id, variant_id, listing_id = _listing(team_a, store_id)
    # Given an operator's publish, which shows what would be published, approved by the owner
    asked = _ask_to_publish(team_a, listing_id)
    assert asked["content"]["product"]["title"] == "Mug"
    assert [v["price"] for v in asked["content"]["product"]["variants"]] == ["12.50"]
    job_id = _approve(team_a, asked["id"])
    # When the operator changes the product before the job runs
    changed = team_a.operator.call(
        "PATCH", f"{org}/" + path.format(product=product_id, variant=variant_id), json=body
    )
    assert changed.status_code == 200, changed.json
    assert job_engine.execute(job_id) is Outcome.FAILED
    # Then nothing reached the platform, the listing is still a draft, the job says why
    assert _on_sale(shopify, shop) == []
    assert team_a.viewer.get(f"{org}/listings/{listing_id}").json["status"] == "draft"
    job = team_a.viewer.get(f"{org}/jobs/{job_id}").json
    assert job["status"] == "failed"
    assert f"what approval {asked['id']} approved has changed since" in job["last_error"]
    # And a new approval asks again, for the same person, showing the current content
    [again] = _pending(team_a)
    assert again["id"] in job["last_error"]
    assert (again["requested_by"], again["payload"]["supersedes"]) == (
        str(team_a.operator.user_id),
        asked["id"],
    )
    assert again["content"] != asked["content"]
    assert again["content_digest"] != asked["content_digest"]
    assert team_a.viewer.get(f"{org}/approvals/{asked['id']}").json["status"] == "approved"
    # When that one is approved, the current content is what is published
    assert job_engine.execute(_approve(team_a, again["id"])) is Outcome.COMPLETED
    title = body.get("title", "Mug")
    price = body.get("price", "12.50")
    assert _on_sale(shopify, shop) == [(title, [price])]
    assert team_a.viewer.get(f"{org}/listings/{listing_id}").json["status"] == "published"
    assert change in ("title", "price")


def test_a_stock_change_after_approval_does_not_ask_again(
    team_a: Team, job_engine: JobEngine, shopify: SandboxServer
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = _connect(team_a, shopify)
    _, variant_id, listing_id = _listing(team_a, store_id)
    job_id = _approve(team_a, _ask_to_publish(team_a, listing_id)["id"])
    # When only the stock moves (a sale, a count) before the job runs
    moved = team_a.operator.call(
        "PATCH", f"{org}/variants/{variant_id}", json={"available_quantity": 3}
    )
    assert moved.status_code == 200, moved.json
    # Then the approved content is published as it was approved
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    assert _on_sale(shopify, shop) == [("Mug", ["12.50"])]
    assert _pending(team_a) == []


def test_a_delete_approved_before_a_listing_went_live_is_asked_again(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine, shopify: SandboxServer
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = _connect(team_a, shopify)
    product_id, _, listing_id = _listing(team_a, store_id)
    # Given an operator's delete of a product on sale nowhere, approved by the owner
    asked = team_a.operator.call("DELETE", f"{org}/products/{product_id}")
    assert asked.status_code == 202, asked.json
    assert asked.json["approval"]["content"]["live_listings"] == []
    job_id = _approve(team_a, asked.json["approval"]["id"])
    # When the product is published before the delete runs
    published = team_a.owner.post(f"{org}/listings/{listing_id}/publish")
    assert job_engine.execute(uuid.UUID(published.json["job"]["id"])) is Outcome.COMPLETED
    assert job_engine.execute(job_id) is Outcome.FAILED
    # Then the product is neither deleted nor taken down, and the delete is asked again
    # with the listing it would now take down
    assert team_a.viewer.get(f"{org}/products/{product_id}").json["status"] == "active"
    assert _on_sale(shopify, shop) == [("Mug", ["12.50"])]
    [again] = _pending(team_a)
    assert [live["listing_id"] for live in again["content"]["live_listings"]] == [listing_id]
    with admin_engine.connect() as conn:
        entries = conn.execute(
            text(
                "SELECT actor_type::text AS actor, after FROM audit_logs "
                "WHERE org_id = :o AND action = 'approval.content_changed'"
            ),
            {"o": team_a.org_id},
        ).all()
    assert [(e.actor, e.after["asked_again"]) for e in entries] == [("system", again["id"])]
