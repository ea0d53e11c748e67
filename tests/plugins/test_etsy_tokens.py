"""Etsy tokens that stay valid, tried through the HTTP API on a running hub: the Etsy sandbox
gives its access tokens a two-second life, the hub's workers refresh them with the store's
refresh token (once, however many jobs need it at the same moment), and a revoked grant
leaves the store marked as needing the merchant to connect it again."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.security.crypto import decrypt_credentials
from tests.api.conftest import Team, make_team
from tests.support.merchant import ok
from tests.support.stack import Stack, eventually, live_stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]
TTL_S = 2


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, ("etsy",)) as running:
        yield running


class EtsyShop:
    """A shop on the Etsy sandbox whose access tokens live ``TTL_S`` seconds."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.servers["etsy"].url
        self.shop_id = int(uuid.uuid4().int % 10**8) + 1000
        self.user_id = int(uuid.uuid4().int % 10**6) + 10
        token, refresh = uuid.uuid4().hex, uuid.uuid4().hex
        self.keys = {"keystring": "ks" + uuid.uuid4().hex[:16], "shared_secret": uuid.uuid4().hex}
        body = {"shop_id": self.shop_id, "user_id": self.user_id, "access_token": token,
                "refresh_token": refresh, "token_ttl_s": TTL_S, "webhook_secret": "whsec_e",
                **self.keys}  # fmt: skip
        requests.post(f"{self.url}/_sandbox/shops", json=body, timeout=5).raise_for_status()
        self.credentials = {
            **self.keys,
            "access_token": f"{self.user_id}.{token}",
            "refresh_token": f"{self.user_id}.{refresh}",
        }

    def state(self) -> dict[str, Any]:
        body = requests.get(f"{self.url}/_sandbox/state", timeout=5).json()
        return body["state"][str(self.shop_id)]  # type: ignore[no-any-return]

    def quantity(self, sku: str) -> int | None:
        for inventory in self.state()["inventories"].values():
            for product in inventory["products"]:
                if product["sku"] == sku:
                    return int(product["offerings"][0]["quantity"])
        return None

    def knobs(self, **values: Any) -> None:
        requests.post(f"{self.url}/_sandbox/knobs", json=values, timeout=5).raise_for_status()

    def order(self, sku: str) -> None:
        body = {"shop_id": self.shop_id, "lines": [{"sku": sku, "quantity": 1}]}
        requests.post(f"{self.url}/_sandbox/orders", json=body, timeout=5).raise_for_status()

    def revoke(self) -> None:
        requests.post(
            f"{self.url}/_sandbox/revoke", json={"shop_id": self.shop_id}, timeout=5
        ).raise_for_status()


def connected(stack: Stack) -> tuple[Team, str, EtsyShop]:
    team = make_team(stack.app.test_client(), "Tokens")
    shop = EtsyShop(stack)
    body = {"platform": "etsy", "name": "etsy", "external_id": str(shop.shop_id),
            "base_url": shop.url, "credentials": shop.credentials,
            "catalog_rules": {"categories": {"*": "1"}}}  # fmt: skip
    store = ok(team.owner.post(f"/orgs/{team.org_id}/stores", json=body), 201)
    return team, str(store["id"]), shop


def published(team: Team, store_id: str, quantity: int = 10) -> tuple[str, str]:
    """A product of one SKU published on the store: (variant id, sku)."""
    org = f"/orgs/{team.org_id}"
    sku = f"TOK-{uuid.uuid4().hex[:6].upper()}"
    product = ok(team.owner.post(f"{org}/products", json={"title": "Tote"}), 201)
    variant = ok(team.owner.post(f"{org}/products/{product['id']}/variants",
                                 json={"sku": sku, "price": "20.00",
                                       "available_quantity": quantity}), 201)  # fmt: skip
    new_listing = {"product_id": product["id"], "store_id": store_id}
    listing = ok(team.owner.post(f"{org}/listings", json=new_listing), 201)
    ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"), 202)
    eventually(
        lambda: team.viewer.get(f"{org}/listings/{listing['id']}").json["status"] == "published",
        "listing published",
    )
    return str(variant["id"]), sku


def job(team: Team, store_id: str, job_type: str) -> str:
    body = {"job_type": job_type, "store_id": store_id}
    return str(ok(team.owner.post(f"/orgs/{team.org_id}/jobs", json=body), 202)["id"])


def finished(team: Team, job_id: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/jobs/{job_id}"
    return eventually(  # type: ignore[no-any-return]
        lambda: (b := team.viewer.get(path).json)["status"] in ("completed", "failed") and b,
        f"job {job_id} finished",
    )


def stored_credentials(admin: Engine, settings: Settings, store_id: str) -> dict[str, str]:
    with admin.connect() as conn:
        row = conn.execute(
            text("SELECT org_id, credentials_encrypted FROM stores WHERE id = :id"),
            {"id": store_id},
        ).one()
    plain = decrypt_credentials(settings, row.org_id, uuid.UUID(store_id), row[1])
    return {k: str.__str__(v) for k, v in plain.items()}


def test_a_store_keeps_working_after_its_token_has_expired(
    stack: Stack, admin_engine: Engine, settings: Settings
) -> None:
    # Given an Etsy store with a published product
    team, store_id, shop = connected(stack)
    org = f"/orgs/{team.org_id}"
    variant_id, sku = published(team, store_id)
    # When the access token's lifetime has passed
    time.sleep(TTL_S + 0.5)
    # and stock comes back to the shelf, and a buyer orders on Etsy
    ok(
        team.operator.post(
            f"{org}/variants/{variant_id}/stock-adjustments",
            json={"delta": 5, "reason": "back to shelf"},
        ),
        201,
    )
    # Then the push reaches Etsy with a refreshed token
    eventually(lambda: shop.quantity(sku) == 15, "Etsy shows 15")
    # and so does the order pull, after the next token's lifetime too
    time.sleep(TTL_S + 0.5)
    shop.order(sku)
    pulled = finished(team, job(team, store_id, "reconcile_orders"))
    assert pulled["status"] == "completed", pulled["last_error"]
    orders = team.viewer.get(f"{org}/orders").json["items"]
    assert [o["store_id"] for o in orders] == [store_id]
    # and the hub holds the pair Etsy issued last, encrypted, and never shows it
    issued = shop.state()["tokens_issued"]
    assert issued >= 2
    kept = stored_credentials(admin_engine, settings, store_id)
    assert kept["refresh_token"] != shop.credentials["refresh_token"]
    assert kept["access_token"] != shop.credentials["access_token"]
    store = ok(team.viewer.get(f"{org}/stores/{store_id}"))
    assert store["status"] == "active"
    assert kept["access_token"] not in str(store)
    with admin_engine.connect() as conn:
        raw = conn.execute(
            text("SELECT credentials_encrypted FROM stores WHERE id = :id"), {"id": store_id}
        ).scalar_one()
    assert kept["refresh_token"].encode() not in bytes(raw)


def test_jobs_that_need_a_fresh_token_at_the_same_moment_refresh_it_once(stack: Stack) -> None:
    # Given an Etsy store whose token has expired, and a slow Etsy
    team, store_id, shop = connected(stack)
    published(team, store_id)
    time.sleep(TTL_S + 0.5)
    issued = shop.state()["tokens_issued"]
    shop.knobs(latency_ms=150)
    try:
        # When three jobs reach Etsy at the same moment
        ids: list[str] = []
        makers = [
            threading.Thread(target=lambda t=t: ids.append(job(team, store_id, t)))
            for t in ("reconcile_orders", "sync_inventory", "list_products")
        ]
        for maker in makers:
            maker.start()
        for maker in makers:
            maker.join()
        outcomes = [finished(team, job_id) for job_id in ids]
    finally:
        shop.knobs(latency_ms=0)
    # Then each completed, and Etsy issued one new pair (it retires the refresh token it
    # was asked with, so a second exchange would have been refused)
    assert [(o["status"], o["last_error"]) for o in outcomes] == [("completed", None)] * 3
    assert shop.state()["tokens_issued"] == issued + 1
    assert ok(team.viewer.get(f"/orgs/{team.org_id}/stores/{store_id}"))["status"] == "active"


def test_a_revoked_grant_marks_the_store_as_needing_reauthorisation(stack: Stack) -> None:
    # Given an Etsy store whose merchant removed the hub's access on Etsy
    team, store_id, shop = connected(stack)
    org = f"/orgs/{team.org_id}"
    shop.revoke()
    time.sleep(TTL_S + 0.5)
    # When a job needs Etsy
    failed = finished(team, job(team, store_id, "reconcile_orders"))
    # Then it fails at once, saying what to do
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert "connect the store again" in failed["last_error"]
    # and the store shows it needs re-authorisation, with the reason
    store = ok(team.viewer.get(f"{org}/stores/{store_id}"))
    assert store["status"] == "needs_reauth"
    assert "refresh token (invalid_grant)" in store["state"]["reauthorisation"]["reason"]
    # and new credentials from the merchant make it active again
    ok(
        team.owner.call(
            "PUT", f"{org}/stores/{store_id}/credentials", json={"credentials": shop.credentials}
        )
    )
    store = ok(team.viewer.get(f"{org}/stores/{store_id}"))
    assert (store["status"], "reauthorisation" in store["state"]) == ("active", False)
