"""An order says what brought it: the webhook delivery and the job that first stored it, or
the reconciliation pull's job when the pull saw it first. Through the HTTP API (the store
connected, the signed delivery posted to the hub's receiver) and the real job engine."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask.testing import FlaskClient

from fusion.jobs.engine import Engine as JobEngine
from fusion.security.signing import shopify_hmac
from tests.api.conftest import Team
from tests.support.merchant import ok, run

SECRET = "shpss_order-origin-secret"


def _connect(team: Team) -> tuple[str, str]:
    shop = f"shop-{uuid.uuid4().hex[:8]}.myshopify.com"
    body = {
        "platform": "shopify",
        "name": "Shop",
        "external_id": shop,
        "credentials": {"access_token": "tok-" + uuid.uuid4().hex},
        "webhook_secret": SECRET,
    }
    store = ok(team.owner.post(f"/orgs/{team.org_id}/stores", json=body), 201)
    return str(store["id"]), shop


def _deliver(client: FlaskClient, store_id: str, shop: str, order: dict[str, Any]) -> None:
    raw = json.dumps(order).encode()
    answer = client.post(
        f"/webhooks/shopify/{store_id}",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-SHA256": shopify_hmac(SECRET, raw),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Topic": "orders/create",
        },
    )
    assert answer.status_code in (200, 202), answer.json


def test_an_order_links_to_the_delivery_and_job_that_brought_it(
    client: FlaskClient, team_a: Team, job_engine: JobEngine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = _connect(team_a)
    order = {
        "id": 7001,
        "admin_graphql_api_id": "gid://shopify/Order/7001",
        "total_price": "10.00",
        "currency": "USD",
        "financial_status": "paid",
        "created_at": "2099-01-01T00:00:00+00:00",
        "line_items": [{"id": 1, "sku": "SKU-ORIGIN", "quantity": 1, "price": "10.00"}],
    }
    # When Shopify delivers an order and the hub processes the delivery
    _deliver(client, store_id, shop, order)
    query = {"job_type": "process_webhook"}
    jobs = ok(team_a.viewer.get(f"{org}/jobs", query_string=query))["items"]
    assert len(jobs) == 1
    run(job_engine, jobs[0]["id"])
    # Then the order names the delivery and the job that stored it
    listed = ok(team_a.viewer.get(f"{org}/orders"))["items"]
    assert [o["external_id"] for o in listed] == ["gid://shopify/Order/7001"]
    shown = ok(team_a.viewer.get(f"{org}/orders/{listed[0]['id']}"))
    assert shown["job_id"] == jobs[0]["id"]
    assert shown["webhook_delivery_id"] == jobs[0]["payload"]["webhook_id"]
    # And a second delivery of the same order (a resend) leaves the links as they were
    _deliver(client, store_id, shop, {**order, "financial_status": "refunded"})
    again = ok(team_a.viewer.get(f"{org}/jobs", query_string=query))["items"]
    run(job_engine, next(j["id"] for j in again if j["id"] != jobs[0]["id"]))
    assert ok(team_a.viewer.get(f"{org}/orders/{listed[0]['id']}"))["job_id"] == jobs[0]["id"]
